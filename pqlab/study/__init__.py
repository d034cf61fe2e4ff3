"""The stored study: profiles and notebook parameters (``config``, ``params``),
the sweep (``sweep``), the run store and its frames (``store``, ``frames``,
``loadframes``), the machine fingerprint (``machine``) and progress reporting."""
