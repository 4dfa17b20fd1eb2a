"""The motion-language model: one causal LM for Motion2Language and Language2Motion.

model.py builds or loads it, vocab.py adds motion tokens, data.py makes instruction examples,
train.py trains it on Ray Train (DDP or DeepSpeed ZeRO) and keeps the model with the lowest
validation loss (selection.py), generate.py decodes both directions (decoding_rules.py: text rules),
synthetic.py and toy.py are the toy corpora and in-process trainer used to measure levers.
"""
