"""Hardware profiles and their JSON form (lorawiz/hardware/profile.py): what `lorawiz doctor --json` writes is
what `--hardware FILE.json` reads back, and a wrong file gets every problem named at once."""

from __future__ import annotations

import json

import pytest

from lorawiz.errors import LorawizError
from lorawiz.hardware.profile import GpuInfo, HardwareProfile, MiB, describe
from lorawiz.hardware.specs import parse_hardware_spec
from tests.unit.hardware.conftest import H100_TOTAL, H100_UUID


def probed_profile() -> HardwareProfile:
    gpus = [GpuInfo(0, "NVIDIA H100 80GB HBM3", H100_UUID, H100_TOTAL, 80000 * MiB, (9, 0), 989.4, 3350.0),
            GpuInfo(1, "Some Future GPU", "GPU-77", 96 * 1024 * MiB, 95 * 1024 * MiB, (10, 0))]
    return HardwareProfile(gpus, "560.28.03", "12.6", 32, 256 * 1024 * MiB, 900 * 1024 * MiB, "probe", ["a note"])


@pytest.mark.parametrize("wrapped", [False, True])
def test_json_round_trip_through_a_file(tmp_path, wrapped):
    original = probed_profile()
    data = {"hardware": original.to_dict(), "lorawiz": "0.1"} if wrapped else original.to_dict()
    path = tmp_path / "box.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    loaded = parse_hardware_spec(str(path))
    assert loaded.gpus == original.gpus
    assert (loaded.driver_version, loaded.cuda_driver_version, loaded.cpu_cores) == ("560.28.03", "12.6", 32)
    assert (loaded.ram_bytes, loaded.disk_free_bytes, loaded.notes) == (original.ram_bytes, original.disk_free_bytes,
                                                                        ["a note"])
    assert loaded.source == f"file:{path}"
    assert describe(loaded)[0] == f"hardware read from {path}"


def test_spec_profile_round_trips_through_to_dict():
    profile = parse_hardware_spec("2xh200")
    assert HardwareProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_hand_written_file_may_give_total_only_and_capability_as_text(tmp_path):
    path = tmp_path / "rig.json"
    path.write_text(json.dumps({"gpus": [{"name": "My GPU", "total_bytes": 1024, "compute_capability": "8.6"}]}))
    (gpu,) = parse_hardware_spec(str(path)).gpus
    assert (gpu.index, gpu.free_bytes, gpu.compute_capability, gpu.uuid) == (0, 1024, (8, 6), "")


def test_wrong_values_are_all_reported_with_their_place(tmp_path):
    path = tmp_path / "wrong.json"
    gpus = [{"name": "x", "total_bytes": "80GB", "compute_capability": [8]},
            {"total_bytes": 1, "compute_capability": "9.0"}]
    path.write_text(json.dumps({"gpus": gpus, "ram_bytes": -1}))
    with pytest.raises(LorawizError) as caught:
        parse_hardware_spec(str(path))
    message = caught.value.message
    assert message.startswith(f"{path}: 4 problems")
    for fragment in ('gpus[0].total_bytes: must be a whole number >= 0 (got "80GB")',
                     "gpus[0].compute_capability: must be like [8, 0]",
                     "gpus[1].name: is missing",
                     "ram_bytes: must be a whole number >= 0 (got -1)"):
        assert fragment in message


def test_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(LorawizError, match=r'list\.json: expected a JSON object with a "gpus" list, not a list'):
        parse_hardware_spec(str(path))


def test_json_without_a_gpus_list_is_not_taken_for_a_cpu_machine(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"lora_r": 16}))
    with pytest.raises(LorawizError, match=r"config\.json: gpus: is missing \(write \[\] for a machine without GPUs\)"):
        parse_hardware_spec(str(path))
