"""Models: builders, the model folder, TFLite, tf.distribute. Imports: wsi, stats, data and the root."""
