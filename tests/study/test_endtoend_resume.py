"""pqlab.study.endtoend.sweep on a resumed run: the points, baselines and ceiling the run
already holds are not measured again, and the others keep their seeds."""

from __future__ import annotations

import dataclasses

import pandas as pd

from pqlab.study import endtoend, params, store


def _settings() -> endtoend.Settings:
    p = params.validate(MODES=["async"], QUEUES=["AsyncBucketQueue"], RATES=[10, 100],
                        PAST_RHOS=[], MAX_RHO=0.8, SERVICE_MS=10.0, WORKERS=2,
                        MIN_RESPONSES=10, POINT_CAP_S=0.5, BASELINE_S=0.2,
                        CEILING_RATES=[1000], CEILING_STEP_S=0.2, WAIT_TARGET_MS=250.0,
                        TIMEOUT_MS=1000.0, PATIENCE_S=2.0, SEED=5, PROGRESS=False)
    return endtoend.settings(p)


def _rows(point: endtoend.Point, tier: str, endpoint: str, value: float) -> pd.DataFrame:
    return pd.DataFrame([{"point": point.key, "mode": point.mode, "queue": point.queue,
                          "policy": point.policy_name, "tier": tier,
                          "rate_target_per_s": point.rate_per_s, "endpoint": endpoint,
                          "priority": "all", "metric": "rate_per_s", "stat": stat,
                          "value": value, "n": 10} for stat in ("achieved", "reply")])


def test_a_resumed_sweep_measures_only_what_the_run_lacks(tmp_path, monkeypatch):
    calls = []

    def measure_point(point, s, seed, *, baseline=False, ceiling=False, say=print):
        calls.append((point.key, seed, baseline, ceiling))
        frames = [_rows(point, "ceiling", "noop", 900.0)] if ceiling else []
        frames.append(_rows(point, point.tier, "infer", point.rate_per_s))
        if baseline:
            frames.append(_rows(point, "baseline", "noop", point.rate_per_s))
        return frames

    monkeypatch.setattr(endtoend, "measure_point", measure_point)
    s = _settings()
    points, _ = endtoend.plan(s)
    assert len(points) == 2
    run = store.Run.create(tmp_path / "data", "e2e")

    class Interrupted(Exception):
        pass

    def stop_after_first(line: str) -> None:
        if line.startswith(points[0].describe()):
            raise Interrupted  # the first point is saved, then the sweep dies

    s_loud = dataclasses.replace(s, progress=True)
    try:
        endtoend.sweep(s_loud, run, echo=stop_after_first)
    except Interrupted:
        pass
    assert calls == [(points[0].key, 5, True, True)]
    assert set(run.frame(endtoend.FRAME)["point"]) == {points[0].key}

    frame = endtoend.sweep(s, run)
    assert calls[1:] == [(points[1].key, 6, True, False)]  # its own seed, no second ceiling
    assert set(frame.loc[frame["tier"].isin(["below"]), "point"]) == {p.key for p in points}
    assert (frame["tier"] == "ceiling").sum() == 2  # one ramp step, its two stats

    endtoend.sweep(s, run)
    assert len(calls) == 2  # everything is there: nothing measured
