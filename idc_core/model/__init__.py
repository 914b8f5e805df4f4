"""Models: builders, the model folder, the scorers (model.scorer: Keras; model.lite: LiteRT), tf.distribute.
Imports: wsi, stats, data and the root."""
