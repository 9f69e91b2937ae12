"""`python eval.py experiment=NAME key=value ...`: see configs/eval.yaml and the README."""

import hydra
from omegaconf import DictConfig

from visionzoo import cli
from visionzoo.run import jobs


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    jobs.main(jobs.evaluate, cfg)


if __name__ == "__main__":
    cli.check_command_line("eval")  # a mistyped override: one line, exit 2
    main()
