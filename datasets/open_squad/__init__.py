"""SQuAD v1.1 question answering: features, span decoding and the official EM/F1."""

from datasets.open_squad.loader import SquadLoader

LOADER = SquadLoader
