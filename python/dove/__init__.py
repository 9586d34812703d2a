"""DOVE / Q-DOVE in PyTorch: model definition, pretrained-part import and TorchScript export."""
