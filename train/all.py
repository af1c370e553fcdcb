"""Train everything a workdir needs on your images within one time budget:

    python -m train.all --workdir W --dataset D --minutes 60

BEGAN, then GE1's autoencoder, then its learned start (gejax.recipe has the split of the
budget), then a short check on held-back train images: G's floor and GE1 against GA.
Rerunning the same command resumes where it stopped. The stage commands (train.began,
train.ae, train.init) continue any stage with a larger --steps.
"""

from gejax import cli, recipe

COMMAND = cli.Command("python -m train.all", recipe.train_all, recipe.AllRun)

if __name__ == "__main__":
    COMMAND.main()
