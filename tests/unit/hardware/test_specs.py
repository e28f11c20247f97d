"""The built-in spec table, `--hardware` names and NxNAME counts, and reading a hardware file
(lorawiz/hardware/specs.py)."""

from __future__ import annotations

import pytest

from lorawiz.errors import LorawizError
from lorawiz.hardware.profile import MiB, describe
from lorawiz.hardware.specs import GPU_SPECS, HARDWARE_NAMES, parse_hardware_spec


@pytest.mark.parametrize("name", HARDWARE_NAMES)
def test_every_table_name_parses(name):
    profile = parse_hardware_spec(name)
    assert profile.source == f"spec:{name}"
    # Host facts belong to the target machine and are unknown for a spec.
    assert (profile.cpu_cores, profile.ram_bytes, profile.disk_free_bytes, profile.driver_version) == (None,) * 4
    if name == "cpu":
        assert profile.is_cpu_only
        return
    spec = GPU_SPECS[name]
    (gpu,) = profile.gpus
    assert gpu.total_bytes == gpu.free_bytes == spec.total_mib * MiB  # free = total: the estimator adds the context
    assert gpu.compute_capability == spec.compute_capability
    assert gpu.peak_tflops_bf16 > 0 and gpu.memory_bandwidth_gbs > 0
    assert parse_hardware_spec(name.upper()).gpus == profile.gpus  # names are case-insensitive


@pytest.mark.parametrize(
    ("name", "gib", "capability", "bf16"),
    [
        ("t4", 15.0, (7, 5), False),
        ("a10g", 22.5, (8, 6), True),
        ("l4", 22.5, (8, 9), True),
        ("rtx3090", 24.0, (8, 6), True),
        ("rtx4090", 24.0, (8, 9), True),
        ("a100-40gb", 40.0, (8, 0), True),
        ("a100-80gb", 80.0, (8, 0), True),
        ("h100-80gb", 79.6, (9, 0), True),
        ("h200", 140.4, (9, 0), True),
        ("laptop-8gb", 8.0, (8, 9), True),
    ],
)
def test_table_figures(name, gib, capability, bf16):
    profile = parse_hardware_spec(name)
    assert round(profile.gpus[0].total_bytes / 1024**3, 1) == gib
    assert profile.gpus[0].compute_capability == capability and profile.supports_bf16 is bf16


def test_t4_throughput_is_its_fp16_figure():
    assert parse_hardware_spec("t4").gpus[0].peak_tflops_bf16 == 65.0


@pytest.mark.parametrize("spec", ["4xa100-80gb", "4x a100-80gb", "4 X A100-80GB", "4\u00d7a100-80gb"])
def test_count_prefix(spec):
    profile = parse_hardware_spec(spec)
    assert profile.gpu_count == 4 and profile.source == "spec:4xa100-80gb"
    assert [gpu.index for gpu in profile.gpus] == [0, 1, 2, 3]
    assert describe(profile)[1] == ("GPU 0-3: 4 x NVIDIA A100-SXM4-80GB, 80.0 GiB total, 80.0 GiB free, "
                                    "compute 8.0, bf16")


@pytest.mark.parametrize(
    ("alias", "source"),
    [("H100", "spec:h100-80gb"), ("RTX 4090", "spec:rtx4090"), ("nvidia_l4", "spec:l4"), ("laptop", "spec:laptop-8gb")],
)
def test_aliases(alias, source):
    assert parse_hardware_spec(alias).source == source


def test_bare_a100_takes_the_smaller_card_and_says_so():
    profile = parse_hardware_spec("a100")
    assert profile.source == "spec:a100-40gb"
    assert any("a100-80gb" in note for note in profile.notes)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec("a100-90gb")
    assert caught.value.message == '--hardware "a100-90gb": unknown hardware name.'
    assert caught.value.hint.startswith('Did you mean "a100-80gb"?')
    assert "h200" in caught.value.hint and "laptop-8gb" in caught.value.hint


def test_unknown_name_with_count_keeps_the_count_in_the_suggestion():
    with pytest.raises(LorawizError, match="unknown hardware name") as caught:
        parse_hardware_spec("8xh1000")
    assert 'Did you mean "8xh100-80gb"?' in caught.value.hint


@pytest.mark.parametrize("spec", ["0xh100", "17xh100", "2x17xh100"])
def test_gpus_of_a_machine_out_of_range(spec):
    with pytest.raises(LorawizError, match="the GPUs of one machine must be 1 to 16") as caught:
        parse_hardware_spec(spec)
    assert "MACHINES x GPUS x NAME" in caught.value.hint


def test_machines_by_gpus_by_name():
    profile = parse_hardware_spec("2x8xH100-80GB")
    assert (profile.machines, profile.gpu_count, profile.world_size) == (2, 8, 16)
    assert profile.source == "spec:2x8xh100-80gb"
    assert profile.gpus[0].name == "NVIDIA H100 80GB HBM3"
    assert parse_hardware_spec("4 x 8 x rtx4090").world_size == 32
    assert parse_hardware_spec("8xh100").machines == 1


def test_machines_survive_the_json_form():
    from lorawiz.hardware.profile import HardwareProfile

    profile = parse_hardware_spec("2x8xa100-80gb")
    again = HardwareProfile.from_dict(profile.to_dict())
    assert (again.machines, again.world_size) == (2, 16)


@pytest.mark.parametrize("spec", ["0x8xh100", "129x8xh100"])
def test_machine_count_out_of_range(spec):
    with pytest.raises(LorawizError, match="the machine count must be 1 to 128"):
        parse_hardware_spec(spec)


def test_unknown_name_keeps_machines_and_gpus_in_the_suggestion():
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec("2x8xh1000")
    assert 'Did you mean "2x8xh100-80gb"?' in caught.value.hint


# ---------------------------------------------------------------------------------------------------------
# Reading a hardware file


def test_broken_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "gpus": [\n    {"name": "x",}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec(str(path))
    assert caught.value.message.startswith(f"{path} line 3: not valid JSON")
    assert "doctor --json" in caught.value.hint


def test_missing_json_file_names_it(tmp_path):
    with pytest.raises(LorawizError, match=r"nowhere\.json: no such hardware file"):
        parse_hardware_spec(str(tmp_path / "nowhere.json"))
