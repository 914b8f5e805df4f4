"""The command lines: one module per command (`python -m idc_core COMMAND`, `idc COMMAND`, or
`python -m idc_core.<command>`) over the shared options of `options`. The work itself is done by the
library modules of idc_core; these parse arguments, print and choose the exit status."""
