"""DOVE / Q-DOVE in PyTorch: model definition, pretrained-part import and TorchScript export."""
from .builtin_ids import keep_registered_builtins_alive

keep_registered_builtins_alive()
