
H
$0b9d7c1e-4f5a-4c1e-9a59-3a2f7c0d1e2fshop-1€àÎ×"c*m-12conv-1cust-1web"u-12&æˆ‘çš„è®¢å• SF1234567890123 åˆ°å“ªäº†:zhEHáz?RL
order_statusÃõh?*
tracking_numberSF1234567890123 *SF"kefu-intentXjgreetingr
phone13800138000