"""Under DDP the first process of a machine tokenises and the others read its cache (lorawiz.train.data): two
processes over gloo, started by torchrun as `lorawiz train --num-processes 2` starts them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import subprocess_env

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import torch.distributed as dist
    from lorawiz.config.resolve import resolve_config
    from lorawiz.train.data import load_run_data

    dist.init_process_group("gloo")  # as the Trainer's processes are, before they load data
    cfg = resolve_config(None, flags={"model_name_or_path": "builtin:tiny", "train_file": sys.argv[1],
                                      "dataset_cache_dir": sys.argv[2]}).config
    run = load_run_data(cfg, world_size=dist.get_world_size())
    seen = [None, None]
    dist.all_gather_object(seen, {"rank": dist.get_rank(), "hit": run.train.hit, "entry": str(run.train.entry),
                                  "rows": run.train.rows})
    if dist.get_rank() == 0:
        print(json.dumps(seen), flush=True)
    dist.destroy_process_group()
    # What is checked is above. Interpreter teardown after gloo once aborted in CI ("terminate called without an
    # active exception", a native thread destroyed at exit), so the script leaves without it.
    os._exit(0)
""")


def test_one_process_tokenises_and_the_other_reads_its_cache(tmp_path):
    from lorawiz.builtin.triage import triage_rows

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in triage_rows("train")[:300]))
    script = tmp_path / "load.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(data), str(tmp_path / "cache")], capture_output=True, text=True,
                          env=subprocess_env(CI="true"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    ranks = sorted(json.loads(next(line for line in done.stdout.splitlines() if line.startswith("["))),
                   key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["hit"] for r in ranks] == [False, True]  # rank 0 built it; rank 1 waited, then read it
    assert ranks[0]["entry"] == ranks[1]["entry"] and ranks[0]["rows"] == ranks[1]["rows"] == 300
