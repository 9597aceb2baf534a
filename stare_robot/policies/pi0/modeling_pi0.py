"""The pi0 policy: transformers' ``PI0ForConditionalGeneration`` with StaKe query tokens.

The network is composed from pi0's own parts rather than copied:

    prefix  = [image patch tokens | instruction tokens | state token | StaKe queries (| action queries)]
              embedded by ``backbone.model.embed_prefix`` (images + text) and run once through the
              PaliGemma VLM ``backbone.model.vlm`` -> hidden states + key/value cache
    actions = pi0's flow-matching action expert (``backbone.forward`` with that cache), or, in
              :mod:`.modeling_pi0_tokens`, discrete action tokens read off the prefix.

Training (``training_losses``) adds the StaKe stage/keyframe losses read at the query positions.
Inference (``predict``) builds the same prefix, queries included, and never calls the StaKe heads.
The training protocol (:mod:`stare_robot.policies.protocol`: ``sample`` / ``score`` /
``value_features``) runs the prefix once per call; its likelihood math is :mod:`.likelihood_pi0`,
its value features are the masked mean of the prefix's last hidden states.

Checkpoint folder (``save_pretrained``)::

    config.json                policy config, incl. the resolved transformers PI0Config
    model.safetensors          all weights (backbone, state token, StaKe, action head)
    normalization_stats.json   state/action statistics from the training data
    tokenizer_config.json ...  the instruction tokenizer
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import PI0Config, PI0ForConditionalGeneration

import stare_robot
from stare_robot.keys import (
    ACTION,
    ACTION_IS_PAD,
    KEYFRAME_TARGET,
    LOSS,
    LOSS_ACTION,
    LOSS_KEYFRAME,
    LOSS_STAGE,
    STAGE_LABEL,
)
from stare_robot.policies.base import (
    Observation,
    ObservationError,
    PolicyMetadata,
    check_observation,
)
from stare_robot.policies.normalize import NormalizationStats
from stare_robot.policies.pi0.configuration_pi0 import PI0PolicyConfig
from stare_robot.policies.pi0.likelihood_pi0 import (
    chain_log_prob_from_prefix,
    check_chain,
    sample_chain,
)
from stare_robot.policies.pi0.processor_pi0 import (
    TOKENIZER_CONFIG_FILE,
    PI0Inputs,
    PI0Processor,
    input_specs,
    load_tokenizer,
)
from stare_robot.policies.protocol import (
    SampledChunks,
    SamplingSpec,
    ScoredRecords,
    TrainablePolicy,
)
from stare_robot.policies.stake import NUM_QUERIES, StaKe

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, NormalizationStats.FILENAME, TOKENIZER_CONFIG_FILE)


def tiny_backbone_config(config: PI0PolicyConfig, vocab_size: int) -> PI0Config:
    """A small pi0 (PaliGemma + Gemma expert) sized by ``config.tiny``; trains on a CPU."""
    t = config.tiny
    # the expert reads the VLM's key/value cache layer by layer: these sizes must match
    shared = {
        "num_hidden_layers": t.layers,
        "num_attention_heads": t.heads,
        "num_key_value_heads": t.kv_heads,
        "head_dim": t.head_dim,
    }
    text = {
        "model_type": "gemma",
        "hidden_size": t.vlm_hidden,
        "intermediate_size": t.vlm_intermediate,
        "vocab_size": vocab_size,
        **shared,
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": t.vision_hidden,
        "intermediate_size": t.vision_intermediate,
        "num_hidden_layers": t.vision_layers,
        "num_attention_heads": t.vision_heads,
        "image_size": config.image_size,
        "patch_size": t.patch_size,
        "vision_use_head": False,
    }
    expert = {
        "model_type": "gemma",
        "hidden_size": t.expert_hidden,
        "intermediate_size": t.expert_intermediate,
        **shared,
    }
    return PI0Config(
        vlm_config={
            "model_type": "paligemma",
            "text_config": text,
            "vision_config": vision,
            "projection_dim": t.vlm_hidden,
            # out of the tokenizer's vocabulary: embed_prefix swaps in the image features
            "image_token_id": vocab_size,
        },
        dit_config=expert,
        chunk_size=config.chunk_size,
        max_state_dim=config.total_state_dim,
        max_action_dim=config.action_dim,
        num_inference_steps=config.num_inference_steps,
    )


def build_backbone(
    config: PI0PolicyConfig, vocab_size: int, from_checkpoint: bool
) -> PI0ForConditionalGeneration:
    """The pi0 network: pretrained weights by path, an explicit config, or the tiny default.

    ``from_checkpoint``: only the architecture is needed (weights follow from model.safetensors).
    """
    # chunk size and denoising steps are policy settings; neither changes pi0's weights
    overrides = {"chunk_size": config.chunk_size, "num_inference_steps": config.num_inference_steps}
    if config.pretrained_path is not None and not from_checkpoint:
        return PI0ForConditionalGeneration.from_pretrained(
            config.pretrained_path, dtype=torch.float32, **overrides
        )
    if config.backbone_config is not None:
        backbone_config = PI0Config.from_dict({**config.backbone_config, **overrides})
    else:
        backbone_config = tiny_backbone_config(config, vocab_size)
    return PI0ForConditionalGeneration(backbone_config).float()


@dataclass
class Prefix:
    """The VLM pass over one batch's prefix."""

    hidden: torch.Tensor  # (B, L, D) VLM outputs
    mask: torch.Tensor  # (B, L) long, 1 = real token
    cache: Any  # transformers DynamicCache with the prefix keys/values, read by the action expert
    queries_start: int  # position of the first appended query token (StaKe, then action queries)


class PI0Policy(nn.Module, TrainablePolicy):
    """pi0 with the flow-matching action expert (``type="pi0"``)."""

    config_class = PI0PolicyConfig

    def __init__(
        self,
        config: PI0PolicyConfig,
        stats: NormalizationStats,
        *,
        tokenizer: Any = None,
        _from_checkpoint: bool = False,
    ):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got "
                f"{type(config).__name__}"
            )
        config.validate()
        self.config = config
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(config)
        self.backbone = build_backbone(config, len(tokenizer), _from_checkpoint)
        self._drop_unused_backbone_parts()
        bcfg = self.backbone.config
        self._check_backbone_fits(bcfg, len(tokenizer))
        vision = bcfg.vlm_config.vision_config
        self.tokens_per_image = (vision.image_size // vision.patch_size) ** 2
        hidden = bcfg.vlm_config.text_config.hidden_size
        self.state_token = nn.Linear(bcfg.max_state_dim, hidden) if config.state_in_prefix else None
        self.stake = StaKe(hidden, config.keyframe_dim) if config.use_stake else None
        self._init_action_head(hidden)
        self.processor = PI0Processor(config, stats, tokenizer, model_image_size=vision.image_size)
        self._metadata = PolicyMetadata(
            name=config.type,
            version=stare_robot.__version__,
            action_space=config.action_space,
            action_dim=config.action_dim,
            chunk_size=config.chunk_size,
            control_rate_hz=config.control_rate_hz,
            inputs=input_specs(config),
            instruction_required=True,
            extra={
                "obs_mode": config.obs_mode,
                "normalization": config.normalization,
                "stake": config.use_stake,
            },
        )

    # --- hooks the action-token variant overrides ---

    def _drop_unused_backbone_parts(self) -> None:
        """The flow head uses all of pi0."""

    def _init_action_head(self, hidden: int) -> None:
        """pi0's own action expert is the flow head: nothing to add."""

    def _query_tokens(self, batch_size: int) -> list[torch.Tensor]:
        """(B, n, D) learnable tokens appended after the state token, in order."""
        return [self.stake.query_tokens(batch_size)] if self.stake is not None else []

    # --- checks ---

    def _check_backbone_fits(self, bcfg: PI0Config, vocab_size: int) -> None:
        c = self.config
        text_vocab = bcfg.vlm_config.text_config.vocab_size
        if vocab_size > text_vocab:
            raise ValueError(
                f"tokenizer has {vocab_size} tokens but the backbone's vocabulary "
                f"has only {text_vocab}"
            )
        if c.total_state_dim > bcfg.max_state_dim:
            raise ValueError(
                f"state width {c.total_state_dim} (state_dim + env_state_dim) exceeds "
                f"the backbone's max_state_dim={bcfg.max_state_dim}"
            )
        if c.action_dim > bcfg.max_action_dim:
            raise ValueError(
                f"action_dim={c.action_dim} exceeds the backbone's "
                f"max_action_dim={bcfg.max_action_dim}"
            )

    # --- the shared VLM prefix ---

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _padded_state(self, inputs: PI0Inputs) -> torch.Tensor:
        """(B, max_state_dim): pi0 zero-pads shorter state vectors."""
        return F.pad(inputs.state, (0, self.backbone.config.max_state_dim - inputs.state.shape[-1]))

    def _run_prefix(self, inputs: PI0Inputs) -> Prefix:
        """Embed images + instruction (+ state token + queries) and run the VLM once."""
        model = self.backbone.model
        batch_size = inputs.input_ids.shape[0]
        if inputs.pixel_values is not None:
            num_image_tokens = inputs.pixel_values.shape[1] * self.tokens_per_image
            image_ids = inputs.input_ids.new_full(
                (batch_size, num_image_tokens), self.backbone.config.vlm_config.image_token_id
            )
            ids = torch.cat([image_ids, inputs.input_ids], dim=1)
            embeds = model.embed_prefix(ids, inputs.pixel_values, inputs.camera_mask)
            image_mask = inputs.camera_mask.repeat_interleave(self.tokens_per_image, dim=1)
            mask = torch.cat([image_mask.long(), inputs.text_mask], dim=1)
        else:  # state mode: the VLM sees no image at all
            embeds = model.get_input_embeddings()(inputs.input_ids)
            mask = inputs.text_mask
        extra = []
        if self.state_token is not None:
            extra.append(self.state_token(self._padded_state(inputs))[:, None])
        queries_start = embeds.shape[1] + len(extra)
        extra += self._query_tokens(batch_size)
        if extra:
            embeds = torch.cat([embeds, *(e.to(embeds.dtype) for e in extra)], dim=1)
            mask = torch.cat(
                [mask, mask.new_ones(batch_size, embeds.shape[1] - mask.shape[1])], dim=1
            )
        out = model.vlm(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=mask.cumsum(-1) - 1,
            token_type_ids=torch.zeros_like(mask),  # all prefix: bidirectional attention
            use_cache=True,
        )
        return Prefix(out.last_hidden_state, mask, out.cache, queries_start)

    # --- training ---

    def training_losses(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Scalar losses of one training batch (format: module docstring of policies.base plus
        ``action`` (B, chunk, A) normalised, ``action_is_pad`` (B, chunk) bool, ``stage_label``
        (B,), ``keyframe_target`` (B, keyframe_dim)); ``"loss"`` is the weighted total."""
        inputs = self.processor.model_inputs(batch, self.device)
        action, is_pad = self._batch_actions(batch)
        prefix = self._run_prefix(inputs)
        losses = {LOSS_ACTION: self._action_loss(prefix, inputs, action, is_pad)}
        total = losses[LOSS_ACTION]
        if self.stake is not None:
            for key in (STAGE_LABEL, KEYFRAME_TARGET):
                if key not in batch:
                    raise ObservationError(
                        f"batch is missing {key!r}, which StaKe training needs "
                        "(or set use_stake=False)"
                    )
            start = prefix.queries_start
            stage_loss, keyframe_loss = self.stake.losses(
                prefix.hidden[:, start : start + NUM_QUERIES],
                torch.as_tensor(batch[STAGE_LABEL], device=self.device),
                torch.as_tensor(batch[KEYFRAME_TARGET], device=self.device),
            )
            losses[LOSS_STAGE], losses[LOSS_KEYFRAME] = stage_loss, keyframe_loss
            total = (
                total
                + self.config.stage_loss_weight * stage_loss
                + self.config.keyframe_loss_weight * keyframe_loss
            )
        losses[LOSS] = total
        return losses

    def _batch_actions(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, chunk, A) normalised actions and (B, chunk) padding flags, shape-checked."""
        if ACTION not in batch:
            raise ObservationError(f"batch is missing {ACTION!r} (B, chunk, action_dim)")
        action = torch.as_tensor(batch[ACTION], device=self.device).float()
        want = (self.config.chunk_size, self.config.action_dim)
        if action.ndim != 3 or tuple(action.shape[1:]) != want:
            raise ValueError(
                f"batch[{ACTION!r}] has shape {tuple(action.shape)}, expected "
                f"(B, chunk_size, action_dim) = (B, {want[0]}, {want[1]})"
            )
        if ACTION_IS_PAD in batch:
            is_pad = torch.as_tensor(batch[ACTION_IS_PAD], device=self.device).bool()
        else:
            is_pad = torch.zeros(action.shape[:2], dtype=torch.bool, device=self.device)
        return action, is_pad

    def _action_loss(
        self, prefix: Prefix, inputs: PI0Inputs, action: torch.Tensor, is_pad: torch.Tensor
    ) -> torch.Tensor:
        """Flow-matching MSE on the velocity, over real action dims and non-padded steps."""
        bcfg = self.backbone.config
        batch_size = action.shape[0]
        beta = torch.distributions.Beta(bcfg.time_sampling_beta_alpha, bcfg.time_sampling_beta_beta)
        time = beta.sample((batch_size,)).to(self.device)
        time = time * bcfg.time_sampling_scale + bcfg.time_sampling_offset
        target = F.pad(action, (0, bcfg.max_action_dim - action.shape[-1]))
        noise = torch.randn_like(target)
        out = self.backbone(
            state=self._padded_state(inputs),
            noise=noise,
            timestep=time,
            actions=target,
            attention_mask=prefix.mask,
            cache=prefix.cache,  # the prefix KV cache ("past_key_values" is deprecated)
        )
        velocity_error = (out.logits - (noise - target))[..., : self.config.action_dim]
        return _masked_mean(velocity_error.pow(2).mean(-1), ~is_pad)

    # --- inference ---

    @property
    def metadata(self) -> PolicyMetadata:
        return self._metadata

    def predict(self, obs: Observation, *, seed: int | None = None) -> np.ndarray:
        """One observation -> float32 (chunk_size, action_dim) action chunk in robot units.

        Deterministic by default; ``seed`` draws a random sample with that seed instead.
        """
        check_observation(obs, self.metadata)
        inputs = self.processor.model_inputs(self.processor.collate([obs]), self.device)
        generator = None
        if seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
        was_training = self.training
        if was_training:  # walking every submodule costs ~10% of a tiny model's predict
            self.eval()
        try:
            with torch.no_grad():
                normalized = self._sample_normalized(self._run_prefix(inputs), inputs, generator)
                action = self.processor.unnormalize_action(normalized)
        finally:
            if was_training:
                self.train()
        return action[0].cpu().numpy().astype(np.float32)

    def _sample_normalized(
        self, prefix: Prefix, inputs: PI0Inputs, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Euler integration of pi0's velocity field from t=1 (noise) to t=0 (actions).

        Starts from zero noise (deterministic) unless a generator is given. -> (B, chunk, A).
        """
        bcfg = self.backbone.config
        batch_size = inputs.input_ids.shape[0]
        shape = (batch_size, bcfg.chunk_size, bcfg.max_action_dim)
        if generator is None:
            x = torch.zeros(shape, device=self.device)
        else:
            x = torch.randn(shape, generator=generator, device=self.device)
        state = self._padded_state(inputs)
        steps = self.config.num_inference_steps
        for step in range(steps):
            x = x - self.denoise_velocity(prefix, state, x, 1.0 - step / steps) / steps
        return x[..., : self.config.action_dim]

    def denoise_velocity(
        self, prefix: Prefix, state: torch.Tensor, x: torch.Tensor, time: float
    ) -> torch.Tensor:
        """pi0's velocity field v(x, t | prefix): (B, chunk, max_action_dim) at flow time ``time``.

        ``state`` is ``_padded_state(inputs)``. The prefix cache is left as it was, so the same
        prefix serves every denoising step (and :mod:`.likelihood_pi0`'s chain log-prob)."""
        prefix_length = prefix.cache.get_seq_length()
        timestep = torch.full((x.shape[0],), float(time), device=x.device)
        velocity = self.backbone(
            state=state,
            noise=x,
            timestep=timestep,
            attention_mask=prefix.mask,
            cache=prefix.cache,  # the prefix KV cache ("past_key_values" is deprecated)
        ).logits
        # drop this step's action tokens: the next step attends to the prefix only
        prefix.cache.crop(prefix_length - prefix.cache.get_seq_length())
        return velocity

    # --- training protocol (stare_robot.policies.protocol) ---
    # The flow head has no tractable density of a chunk: its records are the noisy sampler's
    # denoising chains, scored exactly (likelihood_pi0). ``log_prob(batch, records, spec)`` is
    # that chain log-likelihood; the action-token head overrides the record hooks below.

    @property
    def record_shape(self) -> tuple[int, ...]:
        """(num_inference_steps + 1, chunk, max_action_dim): the denoising chain."""
        bcfg = self.backbone.config
        return (self.config.num_inference_steps + 1, bcfg.chunk_size, bcfg.max_action_dim)

    @property
    def value_feature_dim(self) -> int:
        return self.backbone.config.vlm_config.text_config.hidden_size

    @property
    def likelihood_uses_noise_std(self) -> bool:
        return True

    @property
    def aux_heads(self) -> dict[str, nn.Module]:
        if self.stake is None:
            return {}
        return {"stage_head": self.stake.stage_head, "keyframe_head": self.stake.keyframe_head}

    def prefix_scoring_is_exact(self, spec: SamplingSpec) -> bool:
        """Noise in the last denoising step only: a prefix of that Gaussian is Gaussian."""
        return spec.noisy_steps == 1

    def check_sampling(self, spec: SamplingSpec) -> None:
        scored = spec.scored_steps
        in_range = scored is not None and 1 <= scored <= self.config.chunk_size
        if in_range and not self.prefix_scoring_is_exact(spec):
            raise ValueError(
                "scoring a prefix of the chunk needs noisy_steps=1 for the flow head: noise in "
                "earlier denoising steps mixes all chunk steps "
                f"(got noisy_steps={spec.noisy_steps})"
            )
        super().check_sampling(spec)

    def sample(
        self, batch: Mapping[str, Any], generator: torch.Generator, spec: SamplingSpec
    ) -> SampledChunks:
        self.check_sampling(spec)
        with torch.no_grad():
            inputs = self.processor.model_inputs(batch, self.device)
            prefix = self._run_prefix(inputs)
            records, normalized, log_prob = self._sample_records(prefix, inputs, generator, spec)
            actions = self.processor.unnormalize_action(normalized)
            return SampledChunks(actions, records, log_prob, self._pooled_prefix(prefix))

    def score(
        self, batch: Mapping[str, Any], records: torch.Tensor, spec: SamplingSpec
    ) -> ScoredRecords:
        self.check_sampling(spec)
        records = self._check_records(records)
        inputs = self.processor.model_inputs(batch, self.device)
        prefix = self._run_prefix(inputs)
        log_prob, entropy = self._score_records(prefix, inputs, records, spec, batch)
        return ScoredRecords(log_prob, self._pooled_prefix(prefix), entropy)

    def value_features(self, batch: Mapping[str, Any]) -> torch.Tensor:
        inputs = self.processor.model_inputs(batch, self.device)
        return self._pooled_prefix(self._run_prefix(inputs))

    def records_from_actions(self, actions: Any) -> torch.Tensor | None:
        return None  # the chain cannot be recovered from the chunk

    def _pooled_prefix(self, prefix: Prefix) -> torch.Tensor:
        """(B, hidden) masked mean of the prefix's last hidden states: the value-head features."""
        keep = prefix.mask[..., None].to(prefix.hidden.dtype)
        return (prefix.hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def _check_records(self, records: Any) -> torch.Tensor:
        return check_chain(self, records)

    def _sample_records(
        self, prefix: Prefix, inputs: PI0Inputs, generator: torch.Generator, spec: SamplingSpec
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(records, normalised chunks (B, chunk, A), log-likelihood (B,)), no gradients."""
        chain, log_prob = sample_chain(self, prefix, self._padded_state(inputs), generator, spec)
        return chain, chain[:, -1, :, : self.config.action_dim], log_prob

    def _score_records(
        self, prefix: Prefix, inputs: PI0Inputs, records: torch.Tensor, spec: SamplingSpec,
        batch: Mapping[str, Any],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(log-likelihood (B,), entropy (B,) or None): the chain's transitions have a fixed
        variance, so its entropy does not depend on the weights."""
        state = self._padded_state(inputs)
        return chain_log_prob_from_prefix(self, prefix, state, records, spec), None

    # --- checkpoints ---

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the checkpoint folder (see module docstring); returns its path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = self.config.to_dict()
        config["backbone_config"] = json.loads(self.backbone.config.to_json_string())
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
        save_model(self, str(directory / WEIGHTS_FILE))
        self.processor.save_pretrained(directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> PI0Policy:
        """Load a folder written by :meth:`save_pretrained`."""
        directory = Path(directory)
        config_dict = read_checkpoint_config(directory)
        config = cls.config_class.from_dict(config_dict)
        stats = NormalizationStats.load(directory)
        tokenizer = load_tokenizer(config, checkpoint_dir=directory)
        policy = cls(config, stats, tokenizer=tokenizer, _from_checkpoint=True)
        load_model(policy, str(directory / WEIGHTS_FILE), strict=True)
        return policy.eval()  # as transformers does: a loaded model is ready for inference


def read_checkpoint_config(directory: Path) -> dict[str, Any]:
    """The checkpoint's config.json, after checking that every checkpoint file is present."""
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint folder {str(directory)!r} does not exist")
    missing = [name for name in CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"checkpoint {str(directory)!r} is missing {', '.join(missing)}; a policy checkpoint "
            f"holds {', '.join(CHECKPOINT_FILES)} (written by save_pretrained)"
        )
    return json.loads((directory / CONFIG_FILE).read_text())


def _masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``keep`` (same shape) is True; 0 when nothing is kept."""
    keep = keep.to(values.dtype)
    return (values * keep).sum() / keep.sum().clamp(min=1.0)
