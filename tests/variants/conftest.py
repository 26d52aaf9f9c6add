"""Tiny models built inside the tests, so the real code path runs in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TEXTS = [
    "women are lazy",
    "black people are smart",
    "the jewish comment is about money",
    "muslim men always hate",
    "gay people love work",
    "this is not a stereotype",
    "they are bad at religion and crime and money and work and everything else in the world",
    "all people are good",
    "lgbtq people never work",
    "a b c",
]


@pytest.fixture(scope="session")
def tiny_bert_dir(tiny_models) -> Path:
    """A 2-layer BERT encoder (no head) with a word-level tokenizer, saved as safetensors."""
    return tiny_models["encoder"]


@pytest.fixture(scope="session")
def tiny_classifier_dir(tiny_models) -> Path:
    """A 2-label BertForSequenceClassification with spread-out scores."""
    return tiny_models["classifier"]


@pytest.fixture(scope="session")
def tiny_lm_dir(tiny_models) -> Path:
    """A 2-layer Llama causal LM with a chat template, saved as safetensors."""
    return tiny_models["generator"]


@pytest.fixture()
def texts():
    return list(TEXTS)
