mod proof_support;
