"""The codec core: differentiable proxies (block DCT, quantizers, rate models, JPEG proxy) and the
real codecs behind one small interface. Knows nothing of networks or Lightning."""
