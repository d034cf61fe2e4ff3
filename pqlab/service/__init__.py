"""The reference scheduler service and the HTTP load that measures it from outside.

A layer between ``harness`` and ``study``: ``requests`` (the body, the queued
job, outcomes), ``workers`` (the worker modes), ``scheduler`` (one queue, its
workers, every request's outcome), ``app`` (the FastAPI endpoints),
``server`` (uvicorn on loopback) and ``httpload`` (the open-loop client).
"""
