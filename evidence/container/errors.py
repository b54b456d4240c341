"""Errors of the sealed evidence container.

Messages name chunks, algorithms and hex digests only: never key bytes, never evidence content.
"""

from __future__ import annotations


class ContainerError(Exception):
    """Base of every failure of the sealed container."""


class ContainerFormatError(ContainerError):
    """A stored object or an argument does not follow the container format."""


class ContainerIncomplete(ContainerError):
    """The container is not finished (no index or manifest yet), or finishing it found gaps."""


class IndexIntegrityError(ContainerError):
    """index.json does not have the SHA-256 that the manifest records for it."""


class ChunkIntegrityError(ContainerError):
    """A stored chunk failed authentication or its plaintext does not match the index.

    ``index`` names the chunk. Authentication fails when a chunk was altered, truncated, moved to another
    position, taken from another evidence item, or when the data key is wrong: AES-GCM cannot tell these
    apart, and this error does not pretend to.
    """

    def __init__(self, index: int, problem: str = "authentication failed") -> None:
        self.index = index
        self.problem = problem
        super().__init__(f"chunk {index}: {problem}")

    def __reduce__(self):
        return (type(self), (self.index, self.problem))


class ChunkConflict(ContainerError):
    """A chunk number already holds different bytes (evidence is write-once)."""

    def __init__(self, index: int) -> None:
        self.index = index
        super().__init__(f"chunk {index} was already written with different bytes")

    def __reduce__(self):
        return (type(self), (self.index,))


class HashMismatch(ContainerError):
    """A declared hash of the acquired bytes differs from the one computed while sealing."""

    def __init__(self, algorithm: str, declared: str, computed: str) -> None:
        self.algorithm = algorithm
        self.declared = declared
        self.computed = computed
        super().__init__(f"declared {algorithm} {declared} differs from the computed {computed}")

    def __reduce__(self):
        return (type(self), (self.algorithm, self.declared, self.computed))
