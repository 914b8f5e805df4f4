"""The command lines, the top layer: one module per command (`idc COMMAND`, `python -m idc_core COMMAND`) over options.

They parse arguments, print and choose the exit status; the work is done by the library, which never imports them.
"""
