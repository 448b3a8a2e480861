"""The memory planner's public names in one import (``from reasoner import memory``); the parts live in reasoner.plan."""

from reasoner.plan.budget import Budget, Item, MemoryPlan
from reasoner.plan.estimate import estimate, estimate_for_layout
from reasoner.plan.formulas import (
    DTYPE_BYTES,
    GIB,
    ZERO_STAGES,
    generation_kv_bytes,
    gib,
    kv_bytes_per_token,
    layer_activation_bytes_per_token,
    model_states_bytes,
    training_activation_bytes,
    zero_buffer_bytes,
)
from reasoner.plan.report import format_memory_plan, memory_report, report_of
from reasoner.plan.search import GPU_COUNTS, refusal, refusal_of, smallest_layout, smallest_plan
from reasoner.plan.settings import activation_checkpointing, precision, zero_stage_of
from reasoner.plan.shapes import QWEN25_CONFIGS, SMOLLM2_CONFIG, ModelShape, model_shape, qwen25_size, shape_from_config, table_shape
from reasoner.topology.placement import DEFAULT_GPU_MEMORY_GB

__all__ = [
    "DEFAULT_GPU_MEMORY_GB", "DTYPE_BYTES", "GIB", "GPU_COUNTS", "QWEN25_CONFIGS", "SMOLLM2_CONFIG", "ZERO_STAGES",
    "Budget", "Item", "MemoryPlan", "ModelShape", "activation_checkpointing", "estimate", "estimate_for_layout",
    "format_memory_plan", "generation_kv_bytes", "gib", "kv_bytes_per_token", "layer_activation_bytes_per_token",
    "memory_report", "model_shape", "model_states_bytes", "precision", "qwen25_size", "refusal", "refusal_of",
    "report_of", "shape_from_config", "smallest_layout", "smallest_plan", "table_shape", "training_activation_bytes",
    "zero_buffer_bytes", "zero_stage_of",
]
