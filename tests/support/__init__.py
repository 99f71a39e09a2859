"""What the tests share: the tiny config, miniature dataset trees, weight files, engines, videos,
checks of training state, a headless browser, and the scripts that start `main.py` with a hook
(held_write_main.py, recorded_writes_main.py). No test module imports another test module."""
