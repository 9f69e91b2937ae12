"""`python predict.py experiment=NAME key=value ...`: see configs/predict.yaml and the README."""

import hydra
from omegaconf import DictConfig

from visionzoo import cli
from visionzoo.run import jobs


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    jobs.main(jobs.predict, cfg)


if __name__ == "__main__":
    cli.check_command_line("predict")  # a mistyped override: one line, exit 2
    main()
