"""Writes i3d_state_dict_manifest.json: the state-dict keys and shapes of piergiaj/pytorch-i3d's
`InceptionI3d(num_classes=400, in_channels=3)`, derived by hand from that repository's layer table
(`pytorch_i3d.py`: endpoint names, Unit3D = conv3d [+ bn], InceptionModule branches b0, b1a, b1b, b2a, b2b,
b3b with their output-channel lists, logits conv with bias). It deliberately does not import bench/: it is the
independent reference tests/test_i3d.py checks our network against. Run: python tests/data/make_i3d_manifest.py
"""
import json
from pathlib import Path

# piergiaj's InceptionModule(in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) calls, in-channel sums as written there.
MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (128 + 192 + 96 + 64, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (192 + 208 + 48 + 64, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (160 + 224 + 64 + 64, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (128 + 256 + 64 + 64, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (112 + 288 + 64 + 64, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (256 + 320 + 128 + 128, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (256 + 320 + 128 + 128, [384, 192, 384, 48, 128, 128]),
}


def unit(prefix, cin, cout, k, bn=True, bias=False):
    out = {f"{prefix}.conv3d.weight": [cout, cin, *k]}
    if bias:
        out[f"{prefix}.conv3d.bias"] = [cout]
    if bn:
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.bn.{name}"] = [cout]
        out[f"{prefix}.bn.num_batches_tracked"] = []
    return out


def manifest():
    m = {}
    m.update(unit("Conv3d_1a_7x7", 3, 64, [7, 7, 7]))
    m.update(unit("Conv3d_2b_1x1", 64, 64, [1, 1, 1]))
    m.update(unit("Conv3d_2c_3x3", 64, 192, [3, 3, 3]))
    for name, (cin, oc) in MIXED.items():
        m.update(unit(f"{name}.b0", cin, oc[0], [1, 1, 1]))
        m.update(unit(f"{name}.b1a", cin, oc[1], [1, 1, 1]))
        m.update(unit(f"{name}.b1b", oc[1], oc[2], [3, 3, 3]))
        m.update(unit(f"{name}.b2a", cin, oc[3], [1, 1, 1]))
        m.update(unit(f"{name}.b2b", oc[3], oc[4], [3, 3, 3]))
        m.update(unit(f"{name}.b3b", cin, oc[5], [1, 1, 1]))
    m.update(unit("logits", 384 + 384 + 128 + 128, 400, [1, 1, 1], bn=False, bias=True))
    return dict(sorted(m.items()))


if __name__ == "__main__":
    out = Path(__file__).with_name("i3d_state_dict_manifest.json")
    out.write_text(json.dumps(manifest(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {out} ({len(manifest())} keys)")
