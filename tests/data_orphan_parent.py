"""A trainer stand-in for tests/test_data_pipeline.py: starts a loader with one worker, takes a
batch, prints its pid and its worker's pid, then waits to be killed."""

import os
import sys
import time

if __name__ == "__main__":
    import psutil

    from twintricks.data import Loader, open_source

    loader = Loader(open_source("folder", sys.argv[1], split="train"), train=True, batch_size=2, image_size=8,
                    seed=0, workers=1)
    next(loader.iterator(0))
    workers = [c.pid for c in psutil.Process().children() if "spawn_main" in " ".join(c.cmdline())]
    print(os.getpid(), *workers, flush=True)
    time.sleep(300)
