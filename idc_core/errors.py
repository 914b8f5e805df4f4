"""The project's own exception types; the app turns each into a clear message."""


class IDCError(Exception):
    """Base class of every error this package raises on purpose."""


class ImageError(IDCError):
    """Bytes that are not a usable image (corrupt, unsupported, wrong size or mode)."""


class ImageTooLargeError(ImageError):
    """An image over the configured pixel limit, refused before full decoding."""


class ArchiveError(IDCError):
    """A zip that is corrupt, encrypted, too large, or otherwise unsafe to read."""


class DatasetError(IDCError):
    """A folder or zip that does not hold usable data in the dataset layout."""


class ModelError(IDCError):
    """A model folder that is missing, incomplete, corrupt or incompatible."""


class WeightsError(ModelError):
    """Pre-trained weights that can neither be downloaded nor found locally."""


class AnnotationError(IDCError, ValueError):
    """An annotation file (QuPath GeoJSON) that cannot be read, or whose regions do not fit the slide."""


class SlideError(IDCError):
    """A slide file that cannot be opened, has no usable scale, or cannot be read at the model's scale."""


def one_line(text: object) -> str:
    """`text` (a message or an error) with every run of whitespace made one space; an empty error gives its type."""
    line = " ".join(str(text).split())
    return line or (type(text).__name__ if isinstance(text, BaseException) else "")


def named(name: str, text: str) -> str:
    """`text` naming the input once: prefixed with `name` (as the user called it) unless it starts with it."""
    return text if text.startswith(name) else f"{name}: {text}"
