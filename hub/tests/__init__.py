"""Tests of reasoner_hub, the HF-compatible hub server."""
