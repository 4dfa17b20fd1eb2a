"""The motion-language model: one causal LM for Motion2Language and Language2Motion.

model.py builds or loads it, vocab.py adds motion tokens, data.py makes instruction examples,
train.py trains it on Ray Train (DDP or DeepSpeed ZeRO), generate.py decodes both directions.
"""
