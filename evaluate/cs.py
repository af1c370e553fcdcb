"""Compressed sensing, the paper's Table 1, Table 2 and Figure 4:

    python -m evaluate.cs --m 128 [--workdir ckpt --num_images 64 --out DIR]

Recovers the first N test images from m measurements with Lasso-DCT (at m and at the
paper's m=500), GA (Bora et al.'s CSGM with the same G) and GE0/GE1, and writes
results.json, results.md and figure4.png into --out. With no --workdir it uses the
pre-trained embedded default (MNIST 32x32) shipped with gejax. `--help` lists every flag.
"""

from gejax import cli
from gejax.experiments import cs

COMMAND = cli.Command("python -m evaluate.cs", cs.evaluate, cs.CsRun)

if __name__ == "__main__":
    COMMAND.main()
