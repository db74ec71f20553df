-- The renewal reminder (partners/membership/renewal.py records `membership.renewal_due` a
-- week before a term ends): mailed to the shopper like the other notices (shoppers/mail).
-- Recreates the outbox trigger of 0110 with the type appended and widens the reasons.
DROP TRIGGER event_outbox_mail ON event_outbox;
CREATE TRIGGER event_outbox_mail AFTER INSERT ON event_outbox
    FOR EACH ROW
    WHEN (NEW.event_type IN ('points.expiring', 'tier.changed', 'referral.rewarded',
                             'statement.ready', 'membership.renewal_due'))
    EXECUTE FUNCTION mail.queue_event();

ALTER TABLE mail.delivery DROP CONSTRAINT delivery_reason_check;
ALTER TABLE mail.delivery ADD CONSTRAINT delivery_reason_check CHECK (reason IN (
    'points_expiring', 'tier_changed', 'referral_rewarded', 'statement_ready', 'sign_in_code',
    'membership_renewal'));
