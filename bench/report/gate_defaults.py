"""The regression gate's default tolerances (see compare.py for why these values), in a module light enough for the
CLI to show in `t2v-bench compare --help` without loading pandas."""

QUALITY_DEFAULT = "0.1%"
DEFAULT_FAIL_ON = {"sec_per_video": "+300%", "peak_mem_mb": "+50%"}
