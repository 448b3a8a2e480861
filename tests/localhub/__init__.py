"""Tests of reasoner.localhub, the HF-compatible hub server."""
