"""Typed frames and unit keys (pqlab.study.frames)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pqlab.study import frames


def _row(queue="heapq", scenario="single", tasks=100, workers=1, rep=0, **more):
    return {"throughput_ops_s": 1.0, "queue": queue, "scenario": scenario, "tasks": tasks,
            "producers": workers, "consumers": workers, "repetition": rep, "run_id": "r",
            **more}


def test_summary_rows_put_the_keys_first_and_type_them():
    df = frames.summary_rows([_row(queue="my.Queue"), _row(queue="heapq", tasks=200.0)])
    assert list(df.columns[:len(frames.KEYS)]) == frames.KEYS
    assert df["tasks"].dtype == "int64" and df["producers"].dtype == "int32"
    assert isinstance(df["queue"].dtype, pd.CategoricalDtype)
    # registered queues in registry order, then the others sorted
    assert list(df["queue"].cat.categories) == ["heapq", "my.Queue"]


def test_concat_retypes_parts_whose_categories_differ():
    a = frames.summary_rows([_row(queue="heapq")])
    b = frames.summary_rows([_row(queue="queue.PriorityQueue")])
    both = frames.concat([a, None, b])
    assert list(both["queue"].astype(str)) == ["heapq", "queue.PriorityQueue"]
    assert isinstance(both["queue"].dtype, pd.CategoricalDtype)
    assert frames.concat([]).empty


def test_samples_rows_repeat_the_keys_on_every_task():
    df = frames.samples_rows({"queue": "heapq", "scenario": "single", "tasks": 3},
                             {"seq": np.arange(3), "priority": np.array([1, 2, 3])})
    assert len(df) == 3 and set(df["queue"].astype(str)) == {"heapq"}
    assert df["priority"].dtype == "int8" and df["seq"].dtype == "int64"


def test_unit_keys_are_file_safe_and_keep_distinct_names_apart():
    key = frames.unit_key("queue.PriorityQueue", "threads", 100, 4, 4, 2)
    assert key == "threads__queue.PriorityQueue__t100__p4c4__r2"
    a = frames.unit_key("Aging(age=1ms)", "single", 1, 1, 1, 0)
    b = frames.unit_key("Aging[age=1ms]", "single", 1, 1, 1, 0)
    assert a != b and "(" not in a and "/" not in a
    df = frames.summary_rows([_row(rep=0), _row(rep=1)])
    keys = frames.unit_keys(df)
    assert keys == [frames.unit_key("heapq", "single", 100, 1, 1, r) for r in (0, 1)]
    assert list(frames.in_units(df, {keys[1]})) == [False, True]


def test_sort_units_orders_by_scenario_queue_and_counts():
    df = frames.summary_rows([_row(queue="queue.PriorityQueue", tasks=100),
                              _row(queue="heapq", tasks=200), _row(queue="heapq", tasks=100)])
    ordered = frames.sort_units(df)
    assert list(zip(ordered["queue"].astype(str), ordered["tasks"], strict=True)) == [
        ("heapq", 100), ("heapq", 200), ("queue.PriorityQueue", 100)]
    assert frames.sort_units(pd.DataFrame()).empty
