"""Node-loss scenarios on a real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster:
one head and worker raylets of 1 CPU each, all on 127.0.0.1). Run as a child process by
tests/test_node_loss.py, so the raylets it kills never touch the test session's own Ray:

    python tests/cluster_scenarios.py SCENARIO RESULT.json ARG

Each scenario writes what it measured (rows, node ids, timings) as JSON; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from tdmm_ray.runtime import prepare_local_env

TMP = prepare_local_env()  # before `import ray`: loopback only, session files under the project's temp dir

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

NODE = dict(num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False,
            object_store_memory=120 * 1024 * 1024)


def start_cluster(workers: int) -> tuple[Cluster, list]:
    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "temp_dir": TMP})
    nodes = [cluster.add_node(**NODE) for _ in range(workers)]
    cluster.wait_for_nodes()
    return cluster, nodes


def wait_for(predicate, timeout: float, poll: float = 0.2) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return False


# ---- tdmm generate: a node lost mid-stage, a node added mid-run ---------------------------------
def generate(out: dict, run_dir: str) -> None:
    from tdmm_ray.config import load_config
    from tdmm_ray.data_engine.run import run_generate
    from tdmm_ray.data_engine.shards import DATA_STAGES, plan_shards, stage_digest
    from tdmm_ray.manifest import Manifest
    from tdmm_ray.storage import Storage

    cluster, (first, second) = start_cluster(2)
    overrides = ["prompts.n_prompts=8", "synth.shard_size=1", "synth.width=96", "synth.height=96",
                 "synth.min_seconds=1.0", "synth.max_seconds=1.2", f"ray.address={cluster.address}",
                 "synth.pool.max_actors=3", "synth.pool.num_cpus=0.5", "landmarks.pool.max_actors=2",
                 "landmarks.pool.num_cpus=0.5", "fit.pool.max_actors=3", "fit.pool.num_cpus=0.5"]
    cfg = load_config("tiny", overrides=[*overrides, f"storage={run_dir}/run"])
    store, manifest = Storage(cfg.storage), Manifest(Storage(cfg.storage))
    result: dict = {}

    def run() -> None:
        try:
            result["card"] = run_generate(cfg, show_progress=False)
        except BaseException as err:  # noqa: BLE001 - reported to the test
            result["error"] = f"{type(err).__name__}: {err}"

    def records(stage: str) -> dict:
        try:
            return manifest.done_shards(stage, stage_digest(cfg, stage))
        except Exception:  # noqa: BLE001 - a record being written
            return {}

    ids = {first.node_id: "worker-1", second.node_id: "worker-2", cluster.head_node.node_id: "head"}
    start = time.time()
    thread = threading.Thread(target=run)
    thread.start()
    # Scale out: the pools ask for more CPUs than 3 nodes have, so actors wait for resources; a node
    # joining once the first shard is done takes them.
    wait_for(lambda: len(records("synthesize")) >= 1 or not thread.is_alive(), 300)
    added = cluster.add_node(**NODE)
    ids[added.node_id] = "added"
    out["added_after_s"] = round(time.time() - start, 1)
    # Mid-stage: once more shards passed synthesize but the run is not through, remove the original
    # worker that computed most of them (its actors die with their in-flight shards).
    wait_for(lambda: len(records("synthesize")) >= 3 or not thread.is_alive(), 300)
    made = [r.get("node") for stage in DATA_STAGES for r in records(stage).values()]
    victim = max((first, second), key=lambda n: made.count(n.node_id))
    out["before_loss"] = {"synthesize": len(records("synthesize")), "fit": len(records("fit")),
                          "corpus": len(records("corpus")), "records_by_node": {
                              ids.get(n, n): made.count(n) for n in set(made)}}
    lost_at = time.time()
    cluster.remove_node(victim, allow_graceful=False)
    out["removed"] = ids[victim.node_id]
    out["removed_after_s"] = round(lost_at - start, 1)
    thread.join(600)
    out["run_s"] = round(time.time() - start, 1)
    out["finished_after_loss_s"] = round(time.time() - lost_at, 1)
    out["error"] = result.get("error")
    out["alive_after_join"] = thread.is_alive()
    prompts = store.read_table("prompts/prompts.parquet").to_pylist()
    shards = plan_shards(cfg, prompts)
    out["planned"] = sorted(c["clip_id"] for clips in shards.values() for c in clips)
    by_stage = {}
    for stage in DATA_STAGES:
        recs = records(stage)
        by_stage[stage] = {"shards": sorted(recs), "nodes": sorted({ids.get(r.get("node"), "?") for r in recs.values()}),
                           "after_loss": sum(r["finished_at"] > lost_at for r in recs.values())}
    out["stages"] = by_stage
    after = sorted(r["finished_at"] - lost_at for stage in DATA_STAGES for r in records(stage).values()
                   if r["finished_at"] > lost_at)
    out["first_record_after_loss_s"] = round(after[0], 1) if after else None  # how long the stream stalled
    if "card" in result:
        from tdmm_ray.data_engine.run import read_stage

        fits = read_stage(store, "fit", stage_digest(cfg, "fit")).to_pylist()
        corpus = read_stage(store, "corpus", stage_digest(cfg, "corpus")).to_pylist()
        synth = read_stage(store, "synthesize", stage_digest(cfg, "synthesize")).to_pylist()
        out["synth_ids"] = [r["clip_id"] for r in synth]
        out["fit_ids"] = [r["clip_id"] for r in fits]
        out["qc_pass_ids"] = sorted(r["clip_id"] for r in fits if r["qc_pass"])
        out["corpus_ids"] = [r["clip_id"] for r in corpus]
        out["corpus_expression"] = {r["clip_id"]: r["expression"] for r in corpus}
    ray.shutdown()
    cluster.shutdown()


def _actor_nodes(name_part: str) -> list[str]:
    """Node ids of the live actors whose class or name contains `name_part` (from the GCS table)."""
    nodes = []
    for info in ray._private.state.actors().values():
        label = f"{info.get('ActorClassName', '')} {info.get('Name', '')}"
        if info.get("State") == "ALIVE" and name_part in label:
            nodes.append(info["Address"]["NodeID"])
    return nodes


# ---- tdmm train-lm: 2 workers on 2 nodes, one node lost, resume from the last checkpoint ---------
def train(out: dict, arg: str) -> None:
    from tdmm_ray.config import load_config
    from tdmm_ray.lm.train import train_lm
    from tdmm_ray.main_job.corpus import corpus_rows
    from tdmm_ray.storage import Storage

    spec = json.loads(arg)
    cluster, workers = start_cluster(2)
    cfg = load_config("tiny", overrides=[*spec["overrides"], f"storage={spec['run']}", f"ray.address={cluster.address}",
                                         "train.num_workers=2", "train.steps=12", "train.checkpoint_every=4",
                                         "train.eval_every=12", "train.max_failures=2"])
    store = Storage(cfg.storage)
    lm = Storage(store.url("lm"))
    result: dict = {}

    def run() -> None:
        try:
            result["summary"] = train_lm(cfg, store, corpus=corpus_rows(cfg))
        except BaseException as err:  # noqa: BLE001 - reported to the test
            result["error"] = f"{type(err).__name__}: {err}"

    start = time.time()
    thread = threading.Thread(target=run)
    thread.start()
    def committed() -> list[str]:
        """Checkpoints Ray Train has committed (a reported one still being committed is not
        resumable: losing a node then restarts the run from step 0)."""
        try:
            snapshot = json.loads(lm.read_text("train/checkpoint_manager_snapshot.json"))
        except Exception:  # noqa: BLE001 - not written yet
            return []
        return [c["checkpoint_dir_name"] for c in snapshot.get("checkpoint_results", [])]

    wait_for(lambda: committed() or not thread.is_alive(), 400)
    out["checkpoints_before_loss"] = committed()
    out["error"] = result.get("error")
    worker_nodes = _actor_nodes("RayTrainWorker") if ray.is_initialized() else []
    out["worker_nodes"] = len(set(worker_nodes))
    victims = [n for n in workers if n.node_id in worker_nodes]
    out["victim_found"] = bool(victims)
    if victims:
        lost_at = time.time()
        cluster.remove_node(victims[0], allow_graceful=False)
        out["removed_after_s"] = round(lost_at - start, 1)
    thread.join(600)
    out["error"] = result.get("error")
    out["run_s"] = round(time.time() - start, 1)
    if "summary" in result:
        history = [json.loads(line) for line in lm.read_text("metrics.jsonl").splitlines() if line.strip()]
        resumes = [r for r in history if r.get("event") == "resume"]
        out["summary"] = {k: result["summary"][k] for k in ("steps", "resumed_from", "final_model")}
        out["resumes"] = resumes
        if victims and resumes:
            out["recovery_s"] = round(resumes[0]["time"] - lost_at, 1)
        out["final_exists"] = lm.exists("final/config.json")
    ray.shutdown()
    cluster.shutdown()


# ---- Serve: a replica's node disappears under load ----------------------------------------------
def serve_loss(out: dict, run_url: str) -> None:
    import httpx
    from ray import serve

    from tdmm_ray.serve.app import build_app

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "num_cpus": 2, "temp_dir": TMP})
    workers = [cluster.add_node(**NODE) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port, "location": "HeadOnly"})
    app = build_app({"run_url": run_url, "min_replicas": 2, "max_replicas": 2, "replica_cpus": 0.4})
    serve.run(app, name="tdmm", route_prefix="/")
    url = f"http://127.0.0.1:{port}/v1/text-to-motion"
    log: list[tuple[float, int]] = []
    stop = threading.Event()

    def client(seed: int) -> None:
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                try:
                    status = http.post(url, json={"prompt": "a person smiles", "duration_s": 0.5, "seed": seed}).status_code
                except httpx.HTTPError:
                    status = -1
                log.append((time.time(), status))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: sum(s == 200 for _, s in log) >= 4, 120)
    replica_nodes = _actor_nodes("Language2Motion") + _actor_nodes("Motion2Language")
    ingress = set(_actor_nodes("Ingress"))
    victims = sorted((n for n in workers if n.node_id in replica_nodes),
                     key=lambda n: (n.node_id in ingress, -replica_nodes.count(n.node_id)))
    out["replicas_on_victim"] = replica_nodes.count(victims[0].node_id) if victims else 0
    out["ingress_on_victim"] = bool(victims) and victims[0].node_id in ingress
    lost_at = time.time()
    if victims:
        cluster.remove_node(victims[0], allow_graceful=False)

    gone = victims[0].node_id if victims else None

    def replaced() -> bool:
        """Serve has noticed the loss and runs as many model replicas as before, none on the lost node."""
        nodes = _actor_nodes("Language2Motion") + _actor_nodes("Motion2Language")
        return gone not in nodes and len(nodes) >= len(replica_nodes)

    out["replaced"] = wait_for(replaced, 240, poll=0.5)
    out["replaced_s"] = round(time.time() - lost_at, 1)
    mark = len(log)
    wait_for(lambda: len(log) - mark >= 10, 120)
    stop.set()
    for t in threads:
        t.join(120)
    after = [s for t, s in log if t > lost_at]
    out["requests_before_loss"] = sum(1 for t, _ in log if t <= lost_at)
    out["after_loss"] = {"ok": sum(s == 200 for s in after), "failed": sum(s != 200 for s in after)}
    out["failed_statuses"] = sorted({s for s in after if s != 200})
    out["last_after_restore"] = [s for _, s in log[mark:]]
    ok_after = [t for t, s in log if t > lost_at and s == 200]
    out["first_ok_after_loss_s"] = round(ok_after[0] - lost_at, 2) if ok_after else None
    out["replica_nodes_after"] = len(set(_actor_nodes("Language2Motion") + _actor_nodes("Motion2Language")))
    serve.shutdown()
    ray.shutdown()
    cluster.shutdown()


SCENARIOS = {"generate": generate, "train": train, "serve": serve_loss}

if __name__ == "__main__":
    name, result_path, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    results: dict = {}
    try:
        SCENARIOS[name](results, arg)
    except BaseException:  # noqa: BLE001 - the test shows it
        results["exception"] = traceback.format_exc()
        print(results["exception"], file=sys.stderr)
    finally:
        Path(result_path).write_text(json.dumps(results))
        sys.stdout.flush()
        os._exit(0)  # leave no non-daemon thread of a dead node's client behind
