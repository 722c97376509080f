"""Data-efficiency evaluation: small LMs trained on selections against random subsets."""
