"""One job over several processes (torch.distributed, launched by `torchrun`): who this process
is, how it reaches its peers, and the few collectives innout needs.

A job is joined with `join`: it reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR, MASTER_PORT), connects to the job's key-value store (torchrun's agent hosts it; a
job launched by hand has rank 0 host it) and, for data-parallel work, starts a process group:
gloo for CPU tensors, NCCL for CUDA ones. Outside torchrun everything here is a one-process group
that does nothing, so callers never branch on "distributed or not".

Failures are named: a rank that stops with an error leaves its message in the store; a rank
whose collective fails (a peer died, or did not answer within the timeout) asks the store which
ranks reported an error and which are gone, and raises `PeerError` saying so. Under torchrun the
agent then stops every process of the job and prints which one failed first.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

#: Seconds a process waits for its peers (joining, or inside a collective) before the job ends
#: with an error naming the ranks that did not come; INNOUT_DIST_TIMEOUT changes it. Rank 0
#: writes the run's outputs while the others wait at the end, so it bounds that time too.
DEFAULT_TIMEOUT_S = 1800.0
#: Seconds the survivors of a failed collective give the others to report in.
REPORT_GRACE_S = 2.0
#: Keys of the job's store that innout uses (under this prefix, beside torchrun's own).
STORE_PREFIX = "innout"


class PeerError(RuntimeError):
    """Another process of the job failed, vanished or did not answer in time."""


#: Set once a collective of this process failed: it is ending with a PeerError, and a SIGTERM
#: (torchrun stopping the job) must not replace that error by a vaguer one.
peer_failure_seen = threading.Event()


def timeout_seconds() -> float:
    """The peer timeout (INNOUT_DIST_TIMEOUT, else DEFAULT_TIMEOUT_S)."""
    text = os.environ.get("INNOUT_DIST_TIMEOUT", "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"INNOUT_DIST_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return value


def launched() -> bool:
    """Whether this process was started as one rank of a job (torchrun sets WORLD_SIZE)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


@dataclass
class Group:
    """The processes of one job, as seen from one of them.

    Attributes:
        rank, world_size, local_rank: this process's place (rank 0 is the one that writes).
        backend: the process group's backend ("gloo", "nccl"), "" when there is none (a single
            process, or a job whose ranks work independently and share only the store).
        store: the job's key-value store (None for a single process).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    store: Any = None
    #: What a group without a store keeps for itself (work lists, posted values).
    _local: dict = field(default_factory=dict, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def data_parallel(self) -> bool:
        """Whether collectives run (several ranks sharing one optimisation)."""
        return self.world_size > 1 and self.backend != ""

    def shard(self, count: int) -> range:
        """This rank's contiguous share of `count` items (ranks differ by at most one item)."""
        if not self.data_parallel:
            return range(count)
        return _share(self.rank, self.world_size, count)

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sums `tensor` over the ranks, in place."""
        if self.data_parallel:
            moved = tensor
            if self.backend == "nccl" and tensor.device.type != "cuda":  # NCCL: CUDA only
                moved = tensor.to(torch.device("cuda", torch.cuda.current_device()))
            with self.collective("all_reduce"):
                torch.distributed.all_reduce(moved)
            if moved is not tensor:
                tensor.copy_(moved)
        return tensor

    def gather_shards(self, local: torch.Tensor, count: int) -> torch.Tensor:
        """Every rank's `shard(count)` rows of a tensor, concatenated in item order."""
        if not self.data_parallel:
            return local
        widest = -(-count // self.world_size)
        padded = local.new_zeros((widest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        with self.collective("all_gather"):
            torch.distributed.all_gather(parts, padded)
        rows = [len(_share(rank, self.world_size, count)) for rank in range(self.world_size)]
        return torch.cat([part[:n] for part, n in zip(parts, rows)])

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank (pickled: only between the processes of one job)."""
        if not self.data_parallel:
            return value
        box = [value]
        with self.collective("broadcast"):
            torch.distributed.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def barrier(self) -> None:
        if self.data_parallel:
            with self.collective("barrier"):
                torch.distributed.barrier()

    def _object_device(self) -> torch.device | None:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else None

    def follow_main(self, outcome: BaseException | None) -> None:
        """Makes every rank share rank 0's verdict on work only rank 0 did (checking or creating
        the run folder): rank 0 passes the error it met (or None); when it met one, rank 0
        re-raises it and every other rank raises a PeerError with its message."""
        message = self.broadcast(None if outcome is None else f"{outcome}")
        if outcome is not None:
            raise outcome
        if message is not None:
            raise PeerError(f"rank 0 stopped the job: {message}")

    @contextlib.contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Turns a failed collective into a PeerError naming the ranks responsible."""
        try:
            yield
        except PeerError:
            raise
        except RuntimeError as error:  # gloo / NCCL errors (DistBackendError is one)
            peer_failure_seen.set()
            raise PeerError(self.describe_failure(what, error)) from None

    # The store: failure reports and lists of work.

    def _key(self, name: str) -> str:
        return _store_key(name)

    def report_failure(self, error: BaseException) -> None:
        """Leaves this rank's error in the store for its peers (best effort: the store may be
        gone with the rank that hosted it)."""
        if self.store is None:
            return
        text = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        with contextlib.suppress(Exception):
            self.store.set_timeout(datetime.timedelta(seconds=REPORT_GRACE_S))
            self.store.set(self._key(f"failed/{self.rank}"), text)

    def describe_failure(self, what: str, error: BaseException) -> str:
        """What went wrong when this rank's `what` failed: the ranks that reported an error, and
        those that are gone (they answered neither the collective nor the store)."""
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        prefix = f"rank {self.rank}: {what} with the other ranks failed"
        if self.store is None:
            return f"{prefix} ({reason})"
        try:
            self.store.set_timeout(datetime.timedelta(seconds=REPORT_GRACE_S))
            self.store.set(self._key(f"alive/{self.rank}"), "1")
            deadline = time.monotonic() + REPORT_GRACE_S
            while True:
                failed, gone = {}, []
                for rank in range(self.world_size):
                    if rank == self.rank:
                        continue
                    if self.store.check([self._key(f"failed/{rank}")]):
                        failed[rank] = self.store.get(self._key(f"failed/{rank}")).decode()
                    elif not self.store.check([self._key(f"alive/{rank}")]):
                        gone.append(rank)
                if failed or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        except Exception:  # the store itself is gone: it lived with rank 0 or the agent
            return f"{prefix}: the job's store is unreachable, so rank 0 (or torchrun) is gone"
        parts = [f"rank {rank} failed: {text}" for rank, text in sorted(failed.items())]
        if gone and not failed:
            names = ", ".join(str(rank) for rank in gone)
            parts.append(f"rank{'s' if len(gone) > 1 else ''} {names} stopped without a word "
                         f"(killed, crashed or hung; {reason})")  # fmt: skip
        return f"{prefix}: " + ("; ".join(parts) or reason)

    def take(self, queue: str, count: int) -> Iterator[int]:
        """This rank's items of a work list 0..count-1 shared by every rank: each item goes to
        exactly one rank, the first that asks for the next one (so ranks that finish early
        take more). A single process takes them all, in order."""
        while True:
            if self.store is None:
                taken = self._local.setdefault(f"queue/{queue}", 0)
                self._local[f"queue/{queue}"] = taken + 1
            else:
                taken = int(self.store.add(self._key(f"queue/{queue}"), 1)) - 1
            if taken >= count:
                return
            yield taken

    def share_work(
        self,
        queue: str,
        count: int,
        work: Callable[[int], Any],
        on_result: Callable[[Any], None] | None = None,
    ) -> list[Any] | None:
        """Runs work(i) for the items 0..count-1 of a work list shared by every rank (`take`),
        calling on_result with each result this rank made; rank 0 waits for every item and
        returns all results in item order, the other ranks return None."""
        for number in self.take(queue, count):
            result = work(number)
            self.post(f"{queue}/{number}", result)
            if on_result is not None:
                on_result(result)
        if not self.is_main:
            return None
        return self.collect([f"{queue}/{number}" for number in range(count)])

    def post(self, name: str, value: Any) -> None:
        """Leaves a picklable value under `name` for every rank (see `collect`)."""
        if self.store is None:
            self._local[f"post/{name}"] = value
        else:
            self.store.set(self._key(f"post/{name}"), pickle.dumps(value))

    def collect(self, names: list[str], poll_s: float = 0.5) -> list[Any]:
        """Waits until every name was posted (by any rank) and returns their values, in order.
        No timeout: jobs may take hours, and under torchrun a dead rank ends the whole job.
        Values come from this job's own ranks only (pickles are never read from files)."""
        if self.store is None:
            return [self._local[f"post/{name}"] for name in names]
        keys = [self._key(f"post/{name}") for name in names]
        while not self.store.check(keys):
            time.sleep(poll_s)
        return [pickle.loads(self.store.get(key)) for key in keys]

    def wait_for_all(self, name: str) -> None:
        """Returns once every rank has called wait_for_all(name) (a barrier through the store,
        without a timeout)."""
        self.post(f"{name}/{self.rank}", True)
        self.collect([f"{name}/{rank}" for rank in range(self.world_size)])


#: The one-process group of a process not launched as part of a job (for the collectives,
#: which it skips; `take`, `post` and `collect` of the CLI each use a fresh Group()).
SINGLE = Group()


def _share(rank: int, world_size: int, count: int) -> range:
    """Rank `rank`'s contiguous share of `count` items among `world_size` ranks."""
    return range(rank * count // world_size, (rank + 1) * count // world_size)


#: The group `join` started, while its block runs.
_joined: Group | None = None


def _store_key(name: str) -> str:
    """A key of innout's in the job's store (a restarted torchrun job starts afresh)."""
    return f"{STORE_PREFIX}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{name}"


def _store(rank: int, world_size: int, timeout: float):
    """The job's TCPStore - a client of torchrun's agent store, or hosted by rank 0 when the job
    was launched by hand (MASTER_ADDR / MASTER_PORT) - once every rank has joined it (PeerError
    naming the ranks that did not within `timeout`)."""
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    try:
        port = int(os.environ.get("MASTER_PORT", ""))
    except ValueError:
        raise ValueError("a job's ranks need MASTER_PORT (torchrun sets it)") from None
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    try:
        store = torch.distributed.TCPStore(
            host, port, world_size, is_master=rank == 0 and not agent_store,
            timeout=datetime.timedelta(seconds=timeout), wait_for_workers=False,
        )  # fmt: skip
    except (RuntimeError, TimeoutError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise PeerError(f"rank {rank} of {world_size}: could not reach the job's store at "
                        f"{host}:{port} (rank 0 or torchrun hosts it) within {timeout:.0f} s "
                        f"({first_line})") from None  # fmt: skip
    store.set(_store_key(f"joined/{rank}"), "1")
    deadline = time.monotonic() + timeout
    while True:
        missing = [r for r in range(world_size) if not store.check([_store_key(f"joined/{r}")])]
        if not missing:
            return store
        if time.monotonic() > deadline:
            names = ", ".join(str(r) for r in missing)
            raise PeerError(f"rank {rank} of {world_size}: rank{'s' if len(missing) > 1 else ''} "
                            f"{names} did not join the job within {timeout:.0f} s")  # fmt: skip
        time.sleep(0.05)


def _from_environment() -> tuple[int, int, int]:
    try:
        rank = int(os.environ["RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError) as error:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({error})") from None
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK {rank} outside WORLD_SIZE {world_size}")
    return rank, world_size, local_rank


def rank_device(device: str | torch.device | None, local_rank: int) -> torch.device:
    """A rank's device: "cuda" (or the default on a GPU machine) becomes cuda:LOCAL_RANK."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


@contextlib.contextmanager
def join(device: str | torch.device | None = None, data_parallel: bool = True) -> Iterator[Group]:
    """Joins the job this process was launched into (a one-process group when it was not), for
    the duration of the block.

    With `data_parallel` a process group is started (NCCL when the rank's device is CUDA, else
    gloo) and made the default one, so `innout.invert` shares its optimisation with the other
    ranks; without, the ranks share only the store (independent work, see `next_item`). An
    error leaving the block is reported to the peers (`Group.report_failure`)."""
    if not launched():
        yield Group()
        return
    rank, world_size, local_rank = _from_environment()
    if world_size == 1:
        yield Group()
        return
    timeout = timeout_seconds()
    store = _store(rank, world_size, timeout)
    backend = ""
    if data_parallel:
        target = rank_device(device, local_rank)
        backend = "nccl" if target.type == "cuda" else "gloo"
        if target.type == "cuda":
            torch.cuda.set_device(target)
        try:
            torch.distributed.init_process_group(
                backend, store=torch.distributed.PrefixStore(f"{STORE_PREFIX}/pg", store),
                rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=timeout),
            )  # fmt: skip
        except RuntimeError as error:
            raise PeerError(f"rank {rank}: could not start the {backend} process group "
                            f"({str(error).strip().splitlines()[0]})") from None  # fmt: skip
    global _joined
    group = _joined = Group(rank, world_size, local_rank, backend, store)
    try:
        yield group
    except BaseException as error:
        if not isinstance(error, PeerError):
            group.report_failure(error)
        raise
    finally:
        _joined = None
        if data_parallel and torch.distributed.is_initialized():
            with contextlib.suppress(Exception):
                torch.distributed.destroy_process_group()


def current() -> Group:
    """The group `innout.invert` shares its work with: the default process group when one is
    initialised with several ranks (by `join`, or by the caller), else SINGLE."""
    if _joined is not None and _joined.data_parallel:
        return _joined
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return SINGLE
    return Group(dist.get_rank(), dist.get_world_size(),
                 int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())  # fmt: skip
