"""Crafted ShareLock Lightning checkpoints for tests/unit/text/lightning-ckpt.test.ts.

An official ShareLock checkpoint (FunAILab/ShareLock: ShareLock-CC3M.ckpt) is what PyTorch Lightning's
ModelCheckpoint saves for sharelock/models/model.py's ShareLock module: `state_dict` (language_projector.projection.*
with BatchNorm's running statistics and num_batches_tracked; the vision projector is nn.Identity, no tensors), the
hyper-parameters as the OmegaConf DictConfig given to save_hyperparameters (pickled as omegaconf.dictconfig.DictConfig
with ContainerMetadata, AnyNode leaves, typing.Any, a collections.defaultdict resolver cache), `hparams_type` (the
DictConfig class itself), optimizer and scheduler states, callback states, loops, epoch, global_step and the
Lightning version (with a NumPy scalar and array and a pathlib path in the callback states, as older versions
keep them). Neither omegaconf nor Lightning is installed here (nor needed): stand-in classes registered under
OmegaConf's module and class names pickle exactly as those do (protocol 2: NEWOBJ + BUILD of their __dict__).

Written:
  sharelock_lightning.ckpt         the above, with a tiny head (text 8 -> hidden 16 -> 16 -> vision 6, 3 layers)
  sharelock_lightning.json         its head tensors (official names) and the names it expects
  sharelock_hostile_hparams.ckpt   the same with an object in the hyper-parameters whose REDUCE calls os.system
  sharelock_hostile_callbacks.ckpt the same with it in a callback's state (deep inside the file)
The hostile command would create a file named by the test (FLANEUR_PWNED_PATH below); the test checks it never does.

Rerun: /usr/bin/python3 tools/sharelock_ckpt_fixture.py
"""
import collections
import json
import os
import pathlib
import sys
import types
import typing

import numpy
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "text")
PWNED = "/tmp/flaneur-sharelock-pwned"


def module(name):
    m = types.ModuleType(name)
    sys.modules[name] = m
    return m


class Node:
    """Omegaconf's Node.__getstate__: the instance __dict__ without the flags cache."""

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_flags_cache", None)
        return d


def make(cls_name, mod_name, base=object):
    cls = type(cls_name, (base,), {})
    cls.__module__ = mod_name
    cls.__qualname__ = cls_name
    setattr(sys.modules.get(mod_name) or module(mod_name), cls_name, cls)
    return cls


module("omegaconf")
Metadata = make("Metadata", "omegaconf.base")
ContainerMetadata = make("ContainerMetadata", "omegaconf.base")
AnyNode = make("AnyNode", "omegaconf.nodes", Node)
DictConfig = make("DictConfig", "omegaconf.dictconfig", Node)


def metadata(cls, key, **extra):
    m = cls()
    m.__dict__.update(
        ref_type=typing.Any,
        object_type=dict if cls is ContainerMetadata else None,
        optional=True,
        key=key,
        flags={},
        flags_root=False,
        resolver_cache=collections.defaultdict(dict),
        **extra,
    )
    return m


def conf(d, key=None, parent=None):
    """A DictConfig as omegaconf builds it: _content of nodes, each with metadata and a parent reference."""
    c = DictConfig()
    c.__dict__.update(
        _metadata=metadata(ContainerMetadata, key, key_type=typing.Any, element_type=typing.Any),
        _parent=parent,
        _flags_cache=None,
    )
    content = {}
    for k, v in d.items():
        if isinstance(v, dict):
            content[k] = conf(v, k, c)
        else:
            n = AnyNode()
            n.__dict__.update(_val=v, _metadata=metadata(Metadata, k), _parent=c, _flags_cache=None)
            content[k] = n
    c.__dict__["_content"] = content
    return c


class Hostile:
    """What an attacker would pickle: unpickling it runs os.system."""

    def __reduce__(self):
        return (os.system, (f"touch {PWNED}",))


TEXT, HIDDEN, VISION, LAYERS = 8, 16, 6, 3
CONFIG = {
    "seed": 42,
    "experiment_name": "base",
    "data": {"dataset": ["cc3m"], "num_workers": 16, "precomputed_features_dir": "/features"},
    "model": {
        "embedding_space_dim": 768,
        "vision_encoder": "dinov2_vitl14",
        "vision_projector": {"hidden_size": 4096, "num_layers": 0, "normalize": True},
        "language_encoder": "meta-llama/Meta-Llama-3-8B",
        "language_projector": {"hidden_size": HIDDEN, "num_layers": LAYERS, "normalize": True},
    },
    "training": {"max_steps": 5000, "learning_rate": 0.001, "batch_size": 1024, "weight_decay": 0.0001},
}


def projector():
    torch.manual_seed(3)
    layers, inp = [], TEXT
    for _ in range(LAYERS - 1):
        layers += [nn.Linear(inp, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.ReLU(), nn.Dropout(0.2)]
        inp = HIDDEN
    layers.append(nn.Linear(inp, VISION))
    seq = nn.Sequential(*layers)
    # a few training-mode passes so the running statistics are not the defaults
    seq.train()
    for _ in range(3):
        seq(torch.randn(32, TEXT))
    return seq


def checkpoint(seq, hostile_in=None):
    sd = collections.OrderedDict(
        (f"language_projector.projection.{k}", v) for k, v in seq.state_dict().items()
    )
    opt = torch.optim.Adam(seq.parameters(), lr=1e-3)
    seq(torch.randn(4, TEXT)).sum().backward()
    opt.step()
    hp = conf(CONFIG)
    callbacks = {
        "EarlyStopping{'monitor': 'validation_loss', 'mode': 'min'}": {
            "wait_count": 0,
            "stopped_epoch": 0,
            "best_score": torch.tensor(1.25),
            "patience": 50,
            # values older Lightning versions keep as NumPy scalars / arrays
            "last_score": numpy.float64(1.25),
            "history": numpy.array([1.5, 1.25], dtype=numpy.float32),
        },
        "ModelCheckpoint{'monitor': 'validation_loss', 'mode': 'min', 'every_n_train_steps': 0}": {
            "monitor": "validation_loss",
            "best_model_score": torch.tensor(1.25),
            "best_model_path": "logs/base/version_0/checkpoints/best_model.ckpt",
            "dirpath": pathlib.PosixPath("logs/base/version_0/checkpoints"),
            "best_k_models": {"logs/base/version_0/checkpoints/best_model.ckpt": torch.tensor(1.25)},
        },
    }
    if hostile_in == "hparams":
        hp.__dict__["_content"]["model"].__dict__["_content"]["vision_encoder"].__dict__["_val"] = Hostile()
    if hostile_in == "callbacks":
        callbacks["EarlyStopping{'monitor': 'validation_loss', 'mode': 'min'}"]["wait_count"] = [{"x": Hostile()}]
    return {
        "epoch": 3,
        "global_step": 1500,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": sd,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4, "completed": 3}}}},
        "callbacks": callbacks,
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [{"base_lrs": [0.001], "last_epoch": 1500, "_step_count": 1501, "lr_lambdas": [{}]}],
        "hparams_name": "config",
        "hyper_parameters": hp,
        "hparams_type": DictConfig,
    }


def main():
    ck = checkpoint(projector())
    torch.save(ck, os.path.join(OUT, "sharelock_lightning.ckpt"))
    torch.save(checkpoint(projector(), "hparams"), os.path.join(OUT, "sharelock_hostile_hparams.ckpt"))
    torch.save(checkpoint(projector(), "callbacks"), os.path.join(OUT, "sharelock_hostile_callbacks.ckpt"))
    tensors = {
        k: v.detach().reshape(-1).tolist() for k, v in ck["state_dict"].items() if not k.endswith("num_batches_tracked")
    }
    expected = {
        "config": {"textDim": TEXT, "visionDim": VISION, "hidden": HIDDEN, "layers": LAYERS},
        "languageEncoder": CONFIG["model"]["language_encoder"],
        "visionEncoder": CONFIG["model"]["vision_encoder"],
        "pwned": PWNED,
        "tensors": tensors,
    }
    with open(os.path.join(OUT, "sharelock_lightning.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
