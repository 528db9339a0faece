"""Data-parallel CNN training: PyTorch's DistributedDataParallel, launched by torchrun.

``model_preparation.cnn.processes`` > 1 (an image dataset) makes pipeline.sh run the stage, with
the project's Python (.venv/bin/python), as

    python -m lab1.core.distributed --standalone --nproc-per-node N -m lab1.model_preparation ...

which is torchrun itself (``torch.distributed.run``, the same options: ``--nnodes``,
``--rdzv-endpoint``... for several machines) with two additions: the launcher holds the
checkout's workspace lock for its ranks (pipeline.sh's, or its own when run alone, as on each
node of a multi-node job) and passes it on (torchrun closes inherited descriptors); and a failed
rank, a failed rendezvous or an interruption ends the job with one line instead of torchrun's
report. Each rank is one process
(one GPU on CUDA, backend nccl; gloo on the CPU). Every rank draws the same permutation and the
same augmentation as one process would and trains on its share of each global batch
(``shard``); DDP averages the gradients, so a global batch's gradient is the one-process one up
to summation order and batch-norm statistics (per rank). Rank 0 alone opens the MLflow run and
writes the model; the other ranks only train (``follow``).

Also ``.venv/bin/python -m lab1.core.distributed --processes [stage options]``: prints how many
processes model_preparation runs with (1 unless an image dataset asks for more), or one line and
exit 2 when that is more than the GPUs here (the CPUs are checked with the other params).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab1.core.errors import DataError, PipelineError, UsageError, one_line

if TYPE_CHECKING:
    import torch
    from torch import nn

    from lab1.core.params import Params

logger = logging.getLogger(__name__)
# torchrun looks at its workers this often: a rank that dies inside a gradient all-reduce is
# noticed by the others first (gloo: the connection closes), so rank 0 ends its run FAILED with
# the reason rather than being stopped (KILLED) by torchrun. torchrun's default is 0.1 s.
MONITOR_INTERVAL_S = "2"


class RankLost(PipelineError):
    """A collective failed: another rank stopped (its own line, or torchrun's, says why)."""


def world_size() -> int:
    """How many ranks this process trains with (torchrun's WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_follower() -> bool:
    """A rank other than 0 of a torchrun job: it trains its share and records nothing."""
    return world_size() > 1 and int(os.environ.get("RANK", "0")) > 0


def backend() -> str:
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def run_params(batch_size: int) -> dict[str, Any]:
    """What rank 0 records on the MLflow run (1 process: world_size 1, backend none)."""
    size = world_size()
    return {
        "world_size": size,
        "backend": backend() if size > 1 else "none",
        # The largest share of a global batch one rank gets (``tensor_split``'s first part).
        "per_rank_batch_size": -(-batch_size // size),
    }


@dataclass(frozen=True)
class Group:
    """This process's place in the job, once the process group is up."""

    rank: int
    size: int
    device: torch.device

    def prepare(self, model: nn.Module, train_images: int, batch_size: int, seed: int) -> nn.Module:
        """The model as this rank trains it (DDP: rank 0's weights everywhere, gradients
        averaged), once the sizes are checked (DataError unless every rank gets images in every
        batch); each rank draws its own dropout masks."""
        import torch
        from torch.nn.parallel import DistributedDataParallel

        if train_images < self.size:
            raise DataError(
                f"{train_images} training images (after the validation share) cannot give "
                f"each of {self.size} processes a batch (model_preparation.cnn.processes)"
            )
        if batch_size < self.size:  # params checks this too; here for a caller's own params
            raise DataError(f"batch_size {batch_size} cannot be split among {self.size} processes")
        torch.manual_seed(seed + self.rank)
        # The first convolution of a one-channel image: its weight gradient's strides differ from
        # the bucket's only along a dimension of size 1 (the same layout), and DDP warns anyway.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch (the parts differ by at most one image)."""
        return batch.tensor_split(self.size)[self.rank]

    def total(self, *values: torch.Tensor) -> list[torch.Tensor]:
        """The sums over all ranks of per-rank running sums (float64)."""
        import torch
        from torch import distributed as dist

        stacked = torch.stack([v.double() for v in values])
        dist.all_reduce(stacked)
        return list(stacked)

    def from_rank0(self, *values: float) -> list[float]:
        """Rank 0's values on every rank (early stopping decides the same everywhere)."""
        import torch
        from torch import distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.broadcast(tensor, 0)
        return tensor.tolist()

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's batch-norm statistics everywhere (each rank updated its own on its share)."""
        from torch import distributed as dist

        for buffer in model.buffers():
            dist.broadcast(buffer, 0)

    @contextlib.contextmanager
    def collectives(self) -> Iterator[None]:
        """A failed collective (a rank that died or hung up) as one line, not a traceback."""
        from torch import distributed as dist

        try:
            yield
        except (dist.DistError, RuntimeError) as exc:
            if isinstance(exc, dist.DistError) or "gloo" in str(exc).lower():
                # gloo's message: "[file.cc:561] Connection closed by peer [addr]:port. This
                # is typically caused by..." - the middle part is the news.
                reason = re.sub(r"^\[[^]]*\]\s*", "", one_line(exc)).split(". ")[0]
                raise RankLost(
                    f"rank {self.rank} of {self.size}: training stopped because another rank "
                    f"did ({reason})"
                ) from None
            raise


def join(dev: torch.device) -> Group | None:
    """The process group of this torchrun job (None for one process): nccl with one GPU per
    rank on CUDA, gloo on the CPU. Returns where this rank trains."""
    if world_size() <= 1:
        return None
    import torch
    from torch import distributed as dist

    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend())
    return Group(dist.get_rank(), dist.get_world_size(), dev)


def leave() -> None:
    from torch import distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# --- the launcher ----------------------------------------------------------------------------


def processes(params: Params) -> int:
    """How many processes model_preparation trains with; UsageError when there are fewer GPUs
    than that on a CUDA machine (one rank per GPU)."""
    if not params.is_image or params.model_preparation.cnn.processes == 1:
        return 1
    wanted = params.model_preparation.cnn.processes
    import torch

    if torch.cuda.is_available() and wanted > torch.cuda.device_count():
        raise UsageError(
            f"model_preparation.cnn.processes: {wanted} is more than the "
            f"{torch.cuda.device_count()} GPUs here (one process per GPU)"
        )
    return wanted


def _pass_workspace_lock(fd: int) -> None:
    """torchrun starts each rank with subprocess.Popen, which closes inherited descriptors:
    the workspace lock (lab1/core/workspace.py) that this launcher holds (or its pipeline.sh) is
    passed on explicitly, or every rank would wait for it, and the job would never start."""
    from torch.distributed.elastic.multiprocessing.subprocess_handler import subprocess_handler

    from lab1.core.workspace import LOCK_FD_ENV

    os.environ[LOCK_FD_ENV] = str(fd)  # the ranks' environment is this one's, plus torchrun's
    popen = functools.partial(subprocess_handler.Popen, pass_fds=(fd,))
    setattr(subprocess_handler, "Popen", popen)  # noqa: B010 (mypy: a class, replaced)


def _quiet_torchrun_loggers() -> None:
    """torchrun's own report of a failure is a page; launch's one line says what it says. Its
    loggers set their own levels, so each is quietened by name."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def launch(argv: list[str]) -> int:
    """torchrun with ``argv``, holding this checkout's workspace for its ranks; a failed rank:
    one ERROR line naming it and the cause, exit 1. A rendezvous that fails (the other nodes
    never came) is one line too, and an interrupted launcher stops its ranks and exits 128+N."""
    try:
        from torch.distributed import run as torchrun
    except ModuleNotFoundError:  # an environment made without the image datasets' lock
        logger.error("torch is not installed: `bash pipeline.sh --setup --images` installs it")
        return 1
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError, RendezvousTimeoutError

    from lab1.core.workspace import workspace_held

    _quiet_torchrun_loggers()
    # torchrun's choice for ranks on one machine (it warns when it makes it): one thread each.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    args = torchrun.parse_args(["--monitor-interval", MONITOR_INTERVAL_S, *argv])
    try:
        # This node's ranks share this checkout, as one pipeline's stages do: the launcher holds
        # the workspace for all of them (pipeline.sh's lock, when pipeline.sh started it).
        with workspace_held("lab1/core/distributed.py (torchrun)") as fd:
            _pass_workspace_lock(fd)
            torchrun.run(args)
    except ChildFailedError as exc:
        # The first to fail is the cause (the others lost it in an all-reduce, or were stopped);
        # failure times are whole seconds: on a tie, a rank killed by a signal went first.
        failed, failure = min(
            exc.failures.items(), key=lambda item: (item[1].timestamp, item[1].exitcode >= 0)
        )
        cause = (
            f"killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exit code {failure.exitcode} (its error is above)"
        )
        logger.error("model_preparation failed: rank %s stopped first: %s", failed, cause)
        return 1
    except RendezvousError as exc:
        # A timeout (torchrun's message is empty): fewer nodes came than --nnodes asks for.
        reason = (
            f"not all {args.nnodes} nodes joined in time"
            if isinstance(exc, RendezvousTimeoutError)
            else one_line(exc)
        )
        logger.error(
            "model_preparation failed: torchrun's rendezvous %s at %s: %s",
            args.rdzv_id,
            args.rdzv_endpoint,
            reason,
        )
        return 1
    except SignalException as exc:  # Ctrl-C or SIGTERM (pipeline.sh's): the ranks were stopped
        signame = exc.sigval.name
        logger.warning("model_preparation interrupted (%s); its ranks were stopped", signame)
        return 128 + int(exc.sigval)
    return 0


def main(argv: list[str] | None = None) -> int:
    from lab1.core.cli import params_from_args, run_script, setup_logging, stage_parser

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--processes"]:
        args = stage_parser(__doc__).parse_args(argv[1:])
        setup_logging(args.verbose)

        def show() -> int:
            sys.stdout.write(f"{processes(params_from_args(args))}\n")
            return 0

        return run_script("model_preparation", show)
    if argv[:1] in (["-h"], ["--help"]):  # this wrapper's use; torchrun's options: its own --help
        sys.stdout.write(
            f"{__doc__}\ntorchrun's options: .venv/bin/python -m torch.distributed.run --help\n"
        )
        return 0
    setup_logging()
    return launch(argv)


if __name__ == "__main__":
    raise SystemExit(main())
