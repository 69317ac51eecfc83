"""One embedded server per data directory.

The embedded worker requeues every `running` run at start-up, which is only safe if no
other process is executing them: an exclusive lock on the data directory proves it.
"""

import fcntl
import os
from pathlib import Path
from types import TracebackType

from garrison.domain.errors import UnavailableError


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "garrison.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UnavailableError(
                f"another Garrison process is using {self._path.parent}; stop it or choose "
                "another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DataDirLock":
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
