"""SMS broadcasts: MessageWhiz client, broadcast history, campaign stats and the cost push to Voluum."""
