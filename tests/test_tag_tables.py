"""Per-tag tables show means and intervals but never crown a winner (a tag holds a few unpaired videos)."""
from bench.report.records import Run
from bench.report.tag_tables import tag_tables


def test_tag_tables_mark_no_best():
    def entry(mean: float) -> dict:
        return {"metrics": {"clip_score": {"value": mean, "higher_is_better": True,
                                           "by_tag": {"still": {"mean": mean, "n": 2, "ci95": [mean - 1, mean + 1]}}}}}
    run = Run({"run_id": "r", "methods": {"a": entry(10.0), "b": entry(90.0)}}, None)
    text = "\n".join(tag_tables([run]))
    assert "| a | " in text and "| b | " in text and text.count("(n=2)") == 2
    assert "**" not in text and "no best is marked" in text
