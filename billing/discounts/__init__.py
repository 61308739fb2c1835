"""Coupons (staff's catalogue) and the discounts a subscription redeems from them."""
