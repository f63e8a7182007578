"""What the policy LM reads (method.policy_input): "retokenize" is the authors' code, where every
sampled token is decoded to text and tokenized again (OPT's tokenizer puts </s> before each)."""

import pytest
import torch

from pinbench.methods.rl.policy import QPolicy
from pinbench.methods.rl.regularizers import make_regularizer
from pinbench.models import LoadedModel

WORDS = ["great", "!", "great!", "good", "bad", "movie"]


def opt_like_tokenizer():
    """Word-level, and like OPT's: every call starts with </s>. "great!" is one token id, but its
    text tokenizes to "great" "!" (the pre-tokenizer splits punctuation)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "</s>"] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="</s> $A", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="</s>",
                                   eos_token="</s>")


@pytest.fixture(scope="module")
def tiny_opt() -> LoadedModel:
    from transformers import OPTConfig, OPTForCausalLM

    tok = opt_like_tokenizer()
    torch.manual_seed(0)
    cfg = OPTConfig(vocab_size=len(tok), hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=2,
                    max_position_embeddings=64, word_embed_proj_dim=32, pad_token_id=0, bos_token_id=2,
                    eos_token_id=2, init_std=0.3)
    return LoadedModel("tiny-opt", "causal", OPTForCausalLM(cfg).eval().requires_grad_(False), tok)


def expected_context(tok, tokens: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
    """The authors' context, written out: "</s>" tokenized (</s> </s>), then per step each row's
    token text with its </s>, every step's pieces padded on the right to the step's longest; and
    where each state is read (the last real id of the step's piece)."""
    v = tok.get_vocab()
    bos, pad = v["</s>"], v["<pad>"]
    pieces = {i: [bos, i] for i in v.values()}
    pieces[v["great!"]] = [bos, v["great"], v["!"]]
    pieces[v["</s>"]] = [bos, bos]
    pieces[v["<pad>"]] = [bos, pad]
    rows, positions = [[bos, bos] for _ in tokens], [[1] for _ in tokens]
    for t in range(tokens.shape[1] - 1):  # the last token is never read
        step = [pieces[int(a)] for a in tokens[:, t]]
        width = max(map(len, step))
        for row, where, piece in zip(rows, positions, step):
            where.append(len(row) + len(piece) - 1)
            row += piece + [pad] * (width - len(piece))
    return rows, positions


def test_retokenize_reads_the_authors_context_and_rebuilds_it(tiny_opt):
    tok = tiny_opt.tokenizer
    policy = QPolicy(tiny_opt, hidden=16, prompt_length=4, policy_input="retokenize")
    torch.manual_seed(1)
    rollout = policy.rollout(48, make_regularizer("shannon"), 1.0, torch.Generator().manual_seed(0))
    great_bang = tok.get_vocab()["great!"]
    assert (rollout.tokens[:, :-1] == great_bang).any(), "the test needs a multi-token re-read"
    expected, positions = expected_context(tok, rollout.tokens)
    assert [r[: len(e)] for r, e in zip(rollout.context.tolist(), expected)] == expected
    assert rollout.positions.tolist() == positions
    # e_t is the LM's state at the last real id of step t's piece, read with no attention mask
    # (a shorter row's pads stay in its context), here recomputed one row at a time
    for b in range(0, 48, 7):
        states = tiny_opt.model.model(input_ids=torch.tensor([expected[b]])).last_hidden_state[0]
        assert torch.allclose(rollout.hidden[b], states[rollout.positions[b]], atol=1e-5)
    # a compact checkpoint rebuilds the same states from what was read
    rebuilt = policy.hidden_states(rollout.tokens, rollout.context, rollout.positions)
    assert torch.allclose(rebuilt, rollout.hidden, atol=1e-5)


def test_ids_reads_a_clean_prefix_and_differs_from_retokenize(tiny_opt):
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.manual_seed(1)
    ids = QPolicy(tiny_opt, hidden=16, prompt_length=4).rollout(8, make_regularizer("shannon"), 1.0, gen())
    assert ids.context is None
    start = tiny_opt.tokenizer.bos_token_id
    clean = torch.cat([torch.full((8, 1), start), ids.tokens[:, :-1]], dim=1)
    states = tiny_opt.model.model(input_ids=clean).last_hidden_state
    assert torch.allclose(ids.hidden, states, atol=1e-5)
    torch.manual_seed(1)
    re = QPolicy(tiny_opt, hidden=16, prompt_length=4, policy_input="retokenize").rollout(
        8, make_regularizer("shannon"), 1.0, gen())
    assert not torch.allclose(re.hidden[:, 0], ids.hidden[:, 0])  # "</s> </s>" vs "</s>"
