"""Core: the Task model and its priorities, the stop sentinel, the shared validators,
and a helper to run a coroutine on its own loop. Imports nothing else from pqlab."""
