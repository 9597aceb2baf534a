"""pi0 (transformers' PI0ForConditionalGeneration) as a stare-robot policy: configuration, modeling
(flow-matching expert and discrete action tokens) and processor. Import the submodules directly;
this package file stays empty so that importing the config never pulls in torch."""
