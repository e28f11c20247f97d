"""Where `lorawiz export gguf` may write: a new FILE.gguf outside any training run, or with --overwrite only a GGUF
and a Modelfile that lorawiz export wrote (general.quantized_by, the Modelfile's first line)."""

from __future__ import annotations

import pytest

from lorawiz.errors import LorawizError
from lorawiz.export.gguf import QUANTIZED_BY, check_export_output, export_gguf, gguf_quantized_by, modelfile_for
from lorawiz.export.ollama import modelfile_text


def write_gguf(path, quantized_by=None):
    """A GGUF holding only metadata (the gguf package's own writer; a test fixture, not an export)."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    if quantized_by:
        writer.add_quantized_by(quantized_by)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_modelfile_goes_beside_the_gguf(tmp_path):
    assert modelfile_for(tmp_path / "my-model.gguf") == tmp_path / "my-model.Modelfile"


def test_quantized_by_is_read_back(tmp_path):
    assert gguf_quantized_by(write_gguf(tmp_path / "a.gguf", QUANTIZED_BY)) == QUANTIZED_BY
    assert gguf_quantized_by(write_gguf(tmp_path / "b.gguf")) is None
    (tmp_path / "c.gguf").write_bytes(b"not a gguf")
    assert gguf_quantized_by(tmp_path / "c.gguf") is None


def test_a_new_file_in_an_existing_folder_is_fine(tmp_path):
    check_export_output(tmp_path / "m.gguf", overwrite=False)


@pytest.mark.parametrize(("name", "match"), [
    ("m.bin", "a GGUF file's name ends with .gguf"),
    ("missing/m.gguf", "does not exist"),
])
def test_bad_paths_are_refused(tmp_path, name, match):
    with pytest.raises(LorawizError, match=match):
        check_export_output(tmp_path / name, overwrite=False)


def test_a_folder_is_refused(tmp_path):
    (tmp_path / "m.gguf").mkdir()
    with pytest.raises(LorawizError, match="is a folder"):
        check_export_output(tmp_path / "m.gguf", overwrite=True)


def test_never_into_a_training_run(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text('{"lorawiz": "0"}')
    with pytest.raises(LorawizError, match="inside the training run"):
        check_export_output(tmp_path / "run" / "m.gguf", overwrite=False)


def test_overwrite_replaces_only_lorawiz_exports(tmp_path):
    ours = write_gguf(tmp_path / "m.gguf", QUANTIZED_BY)
    with pytest.raises(LorawizError, match="already exists") as raised:
        check_export_output(ours, overwrite=False)
    assert "--overwrite" in raised.value.hint
    check_export_output(ours, overwrite=True)
    modelfile_for(ours).write_text(modelfile_text("m.gguf", None))
    check_export_output(ours, overwrite=True)
    modelfile_for(ours).write_text("FROM ./m.gguf\n")  # a Modelfile of the user's own
    with pytest.raises(LorawizError, match="m.Modelfile was not written by lorawiz export"):
        check_export_output(ours, overwrite=True)
    theirs = write_gguf(tmp_path / "t.gguf", "someone else")
    with pytest.raises(LorawizError, match="t.gguf was not written by lorawiz export"):
        check_export_output(theirs, overwrite=True)


def test_unknown_quant_and_non_models_are_refused_before_any_work(tmp_path):
    with pytest.raises(LorawizError, match="--quant q3_x: unknown") as raised:
        export_gguf(tmp_path, tmp_path / "m.gguf", quant="q3_x")
    assert "q4_k_m" in raised.value.hint
    with pytest.raises(LorawizError, match="is not an adapter or a model folder"):
        export_gguf(tmp_path, tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []
