-- A refund returns a campaign's budget for the points it took back (issue 19, "exactness left
-- over"). One row per (refund, campaign): the campaign points of the original purchase this
-- refund reversed; `campaigns.awarded_points` and the shopper's `campaign_shopper_awards` row
-- went down by the same points in the refund's transaction (partners/campaign_returns.py).
-- The rows make the return auditable: for every campaign,
--   awarded_points = sum(purchase_breakdown campaign points) - sum(campaign_budget_returns).
CREATE TABLE campaign_budget_returns (
    refund_id   uuid   NOT NULL REFERENCES partner_transactions (id),
    campaign_id bigint NOT NULL REFERENCES campaigns (id),
    shopper_id  bigint NOT NULL,
    points      bigint NOT NULL CHECK (points > 0),
    PRIMARY KEY (refund_id, campaign_id)
);
CREATE INDEX campaign_budget_returns_campaign ON campaign_budget_returns (campaign_id);
