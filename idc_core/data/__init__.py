"""Data in: image decoding, the zip guard, the dataset layout, splits, tf.data. Imports: the idc_core root."""
