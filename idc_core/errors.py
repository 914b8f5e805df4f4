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


class SlideError(IDCError):
    """A slide file that cannot be opened, has no usable scale, or cannot be read at the model's scale."""
