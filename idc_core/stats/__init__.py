"""Statistics of P(IDC): metrics, operating-point curves, calibration fits. Imports: the idc_core root."""
