"""Pre- and post-processor networks. They know nothing of codecs: images in, images out."""
