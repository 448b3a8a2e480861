"""LoRA adapters as recipe data: the ``peft:`` section, the layouts that can train one, and adapter folders.

* :mod:`reasoner.lora.config`: the section's schema (PEFT's own ``LoraConfig`` fields) and the config it builds;
* :mod:`reasoner.lora.layout`: the combinations TRL 1.16 cannot run with an adapter, refused before anything loads;
* :mod:`reasoner.lora.adapter`: adapter folders on disk and on the hub (their base, loading, merging);
* :mod:`reasoner.lora.training`: what a training run adds for an adapter (TRL's peft_config, the named base).
"""
