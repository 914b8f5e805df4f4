"""idc_core: detection of invasive ductal carcinoma (IDC) in 50x50 H&E patches.

Importing this package is cheap: TensorFlow is imported only by the modules
that need it (models, train, evaluate, predict, gradcam, model_io).
"""

import os
from collections.abc import Callable

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) hides our own messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

PATCH_SIZE = 50
CLASS_NAMES = ("no IDC", "IDC")
Progress = Callable[[int, int], None]
"""progress(done, total): what every long-running function of the package calls as it goes."""
