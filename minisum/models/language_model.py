"""The paper's causal language model (docs/paper.md section 1), in three variants.

    attention   every block attention; input tok + pos
    summation   every block summation; input tok * (pos + 2)
    hybrid      summation blocks, then one attention block at the output; input tok * (pos + 2)

Parameter names and shapes are the reference PyTorch model's (minisum/torch_reference.py),
so state dicts move between the two (`python -m minisum.torch_convert`, docs/to_torch.md). `generate` runs incrementally: a running sum per summation layer and a
key/value cache for the attention layer.
"""
import numpy as np

from minisum import checks, ops
from minisum.autograd import no_grad
from minisum.backend import get_array_module, to_numpy
from minisum.nn import Embedding, LayerNorm, Linear, Module, ModuleList, attention_block, summation_block
from minisum.nn.summation import positional_modulation

MIXERS = ("attention", "summation", "hybrid")
POSITION_BIAS = 2.0  # the reference's constant in tok * (pos + 2.0)


class LanguageModel(Module):
    def __init__(self, vocab_size, d_model=512, n_layers=4, n_heads=8, max_len=256, mixer="hybrid"):
        checks.sizes(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads, max_len=max_len)
        if mixer not in MIXERS:
            raise ValueError(f"unknown mixer {mixer!r}: choose one of {', '.join(MIXERS)}")
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.config = dict(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                           max_len=max_len, mixer=mixer)
        self.token_embedding = Embedding(vocab_size, d_model)
        self.pos_embedding = Embedding(max_len, d_model)
        kinds = {"attention": ["attention"] * n_layers, "summation": ["summation"] * n_layers,
                 "hybrid": ["summation"] * (n_layers - 1) + ["attention"]}[mixer]
        self.layers = ModuleList([attention_block(d_model, n_heads) if kind == "attention" else summation_block(d_model)
                                  for kind in kinds])
        self.final_norm = LayerNorm(d_model)
        self.output_projection = Linear(d_model, vocab_size)
        self.multiplicative = mixer != "attention"

    def embed(self, ids, start=0):
        """ids (B, T) -> (B, T, C), positions start..start+T-1."""
        T = ids.shape[1]
        if start + T > self.config["max_len"]:
            raise ValueError(f"sequence of {start + T} tokens is longer than the positional table "
                             f"({self.config['max_len']}): use a larger max_len")
        xp = get_array_module(ids)
        tok = self.token_embedding(ids)  # (B, T, C)
        pos = self.pos_embedding(xp.arange(start, start + T))  # (T, C)
        return positional_modulation(tok, pos, POSITION_BIAS) if self.multiplicative else tok + pos

    def forward(self, ids, caches=None, start=0):
        """ids (B, T) integer array -> logits (B, T, V).

        `caches` (one dict per layer, from `new_caches`) makes the call incremental: the
        tokens continue a sequence whose first `start` tokens were fed earlier.
        """
        return self.output_projection(self.features(ids, caches, start))

    def features(self, ids, caches=None, start=0):
        """ids (B, T) -> (B, T, C): the normalised states the output layer reads."""
        x = self.embed(ids, start)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if caches is None else caches[i])
        return self.final_norm(x)

    def loss(self, ids, targets, pad_id=None):
        """The mean next-token cross-entropy over targets that are not `pad_id`, and the
        number of those targets that the argmax of the logits gets right.

        ids, targets (B, T) integer arrays -> (loss: 0-d Tensor, hits: 0-d integer array on the device).
        The output layer and the loss run fused (ops/linear_cross_entropy.py): the (B, T, V)
        logits are never held, which at the paper's vocabulary is most of a step's memory.
        """
        out = self.output_projection
        return ops.linear_cross_entropy(self.features(ids), out.weight, out.bias, targets, ignore_index=pad_id)

    def hidden_states(self, ids):
        """The states after the embedding and after every block (for the representation analysis)."""
        states = [self.embed(ids)]
        for layer in self.layers:
            states.append(layer(states[-1]))
        return states

    def new_caches(self):
        return [{} for _ in self.layers]

    def generate(self, prompt_ids, max_new_tokens, temperature=1.0, top_k=None, rng=None):
        """Sample `max_new_tokens` tokens after `prompt_ids` (a list or (T,) array of ids).

        The prompt goes through once; each new token then costs one step: O(d) state per
        summation layer, a growing key/value cache only for attention layers.
        """
        prompt = to_numpy(prompt_ids)
        if prompt.ndim != 1 or not prompt.size:
            raise ValueError(f"prompt_ids must be a list or 1-D array of at least one token id, "
                             f"got shape {prompt.shape}")
        checks.ids_in_range("prompt_ids", prompt, self.config["vocab_size"])
        checks.integer("max_new_tokens", max_new_tokens, minimum=0)
        check_sampling(temperature, top_k)
        ids = prompt.tolist()
        if len(ids) + max_new_tokens > self.config["max_len"]:
            raise ValueError(f"prompt ({len(ids)}) + max_new_tokens ({max_new_tokens}) exceeds the "
                             f"positional table of {self.config['max_len']} positions")
        rng = rng or np.random.default_rng()
        was_training = self.training
        self.eval()
        caches = self.new_caches()
        xp = get_array_module(self.token_embedding.weight.data)
        with no_grad():
            logits = self.forward(xp.asarray([ids]), caches)[:, -1]  # (1, V)
            for step in range(max_new_tokens):
                ids.append(sample_token(to_numpy(logits.data)[0], temperature, top_k, rng))
                if step + 1 < max_new_tokens:
                    logits = self.forward(xp.asarray([ids[-1:]]), caches, start=len(ids) - 1)[:, -1]
        self.train(was_training)
        return ids


def check_sampling(temperature, top_k):
    """temperature a finite number >= 0 (0: greedy), top_k None (no limit) or an integer >= 1."""
    checks.real("temperature", temperature, minimum=0)
    if top_k is not None:
        checks.integer("top_k", top_k, minimum=1)


def sample_token(logits, temperature, top_k, rng):
    """One id drawn from softmax(logits / temperature), limited to the top_k largest logits.
    temperature 0 means greedy (the argmax)."""
    check_sampling(temperature, top_k)
    if temperature == 0:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / temperature
    if top_k is not None and top_k < logits.size:
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits < cutoff, -np.inf, logits)
    probs = np.exp(logits - logits.max())
    return int(rng.choice(logits.size, p=probs / probs.sum()))

