"""The small-LM kit: tokenizer, a small GPT (or any local causal LM), training, held-out loss."""
